"""Bit-flip sweeps: damage to a finished data directory is repaired at the tail or refused.

A workload is run to completion and the storage closed. Then, one at a time, a random bit of a
WAL segment (or of the snapshot file) is flipped and the directory opened again:

- in a finished segment, in a segment header, or in any record but the last: ``CorruptLog``
  naming that file;
- in the last record of the last segment: ``CorruptLog``, or a repair that drops exactly that
  record (it is indistinguishable from a write torn by a crash), with the bytes kept aside;
- in the unused, preallocated space after it: repaired, nothing lost;
- in the snapshot file: ``CorruptSnapshot``.

Never a silently different state.
"""

from __future__ import annotations

import logging
import os
import random

import pytest
from storage_workload import apply, workload

from raftkv._errors import CorruptLog, CorruptSnapshot
from raftkv.storage import FileStorage, PersistedState, SimFileSystem
from raftkv.storage._records import Frame, read_frame

DIR = "/data"
SEGMENT_BYTES = 8192


async def _open(files: dict[str, bytes]) -> tuple[PersistedState, SimFileSystem]:
    fs = SimFileSystem(files, dirs=[DIR])
    storage = await FileStorage.open(DIR, segment_bytes=SEGMENT_BYTES, thread_io="never", fs=fs)
    state = await storage.load()
    await storage.aclose()
    return state, fs


async def _finished_directory(seed: int) -> dict[str, bytes]:
    fs = SimFileSystem(dirs=[DIR])
    storage = await FileStorage.open(DIR, segment_bytes=SEGMENT_BYTES, thread_io="never", fs=fs)
    for op in workload(seed, 150):
        await apply(storage, op)
    await storage.aclose()
    return fs.image()


def _records(buf: bytes) -> list[Frame]:
    out = []
    pos = 0
    while isinstance(frame := read_frame(buf, pos), Frame):
        out.append(frame)
        pos = frame.end
    return out


@pytest.fixture(autouse=True)
def _quiet_repairs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="raftkv.storage")


async def test_wal_bit_flips_are_repaired_at_the_tail_or_refused() -> None:
    files = await _finished_directory(seed=11)
    full, _ = await _open(files)
    segments = sorted(p for p in files if p.endswith(".wal"))
    assert len(segments) >= 4, "the workload must span several segments"
    last = segments[-1]
    records = _records(files[last])
    tail = records[-1]
    assert len(records) >= 2, "the last segment must hold a record after its header"
    without_tail, _ = await _open({**files, last: files[last][: tail.offset]})
    assert without_tail != full

    rng = random.Random(2024)
    sizes = [len(files[p]) for p in segments]
    outcomes = {"refused": 0, "tail dropped": 0, "nothing lost": 0}
    flips = 600
    for _ in range(flips):
        path = rng.choices(segments, weights=sizes)[0]
        pos = rng.randrange(len(files[path]))
        damaged = bytearray(files[path])
        damaged[pos] ^= 1 << rng.randrange(8)
        where = f"bit flip in {os.path.basename(path)} at byte {pos}"
        try:
            state, fs = await _open({**files, path: bytes(damaged)})
        except CorruptLog as exc:
            assert exc.path == path, where
            outcomes["refused"] += 1
            continue
        # Accepted: only damage at or after the last record of the last segment may be.
        assert path == last and pos >= tail.offset, f"{where}: accepted, not refused"
        broken = [p for p in fs.image() if p.endswith(".broken")]
        assert broken, f"{where}: repaired without keeping the damaged bytes"
        if pos < tail.end:
            assert state == without_tail, f"{where}: repaired to a state never saved"
            outcomes["tail dropped"] += 1
        else:
            assert state == full, f"{where}: lost data to a flip in unused space"
            outcomes["nothing lost"] += 1
    assert sum(outcomes.values()) == flips
    assert all(outcomes.values()), outcomes


async def test_snapshot_file_bit_flips_are_refused() -> None:
    files = await _finished_directory(seed=12)
    (path,) = (p for p in files if p.endswith(".snap"))
    rng = random.Random(99)
    for _ in range(200):
        damaged = bytearray(files[path])
        damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
        with pytest.raises(CorruptSnapshot):
            await _open({**files, path: bytes(damaged)})


async def test_a_torn_tail_is_set_aside_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="raftkv.storage")
    files = await _finished_directory(seed=13)
    last = max(p for p in files if p.endswith(".wal"))
    tail = _records(files[last])[-1]
    torn = files[last][: tail.end - 5]  # the record's last bytes never reached the disk
    state, fs = await _open({**files, last: torn})
    before_tail, _ = await _open({**files, last: files[last][: tail.offset]})
    assert state == before_tail
    image = fs.image()
    (broken,) = (p for p in image if p.endswith(".broken"))
    assert image[broken] == files[last][tail.offset : tail.end - 5]
    assert "torn tail" in caplog.text and broken in caplog.text
    # The repair is durable and final: opening again changes nothing and logs nothing.
    caplog.clear()
    again, _ = await _open(image)
    assert again == state
    assert "torn tail" not in caplog.text
