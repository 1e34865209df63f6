"""Bit-flip sweeps: damage to a finished data directory is repaired at the tail or refused.

A workload is run to completion and the storage closed. Then, one at a time, a random bit of a
WAL segment (or of the snapshot file) is flipped and the directory opened again:

- in a finished segment, in a segment header, or in any record but the last: ``CorruptLog``
  naming that file;
- in the last record of the last segment: ``CorruptLog``, or a repair that drops exactly that
  record (it is indistinguishable from a write torn by a crash), with the bytes kept aside;
- in the unused, preallocated space after it: repaired, nothing lost;
- in the snapshot file: ``CorruptSnapshot``;
- in a last record naming the newest snapshot, whose predecessor is deleted: recovery falls
  back to that snapshot (``_snapfallback``) and loses nothing.

Never a silently different state.
"""

from __future__ import annotations

import logging
import os
import random

import pytest
from storage_workload import apply, end_with_local_snapshot, workload

from raftkv import CorruptLog, CorruptSnapshot, StorageMismatch
from raftkv.core import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftkv.storage import FileStorage, PersistedState, SimFileSystem
from raftkv.storage._records import RecordType, leading_frames

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


@pytest.fixture(autouse=True)
def _quiet_repairs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="raftkv.storage")


async def test_wal_bit_flips_are_repaired_at_the_tail_or_refused() -> None:
    files = await _finished_directory(seed=11)
    full, _ = await _open(files)
    segments = sorted(p for p in files if p.endswith(".wal"))
    assert len(segments) >= 4, "the workload must span several segments"
    last = segments[-1]
    records = leading_frames(files[last])
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
    tail = leading_frames(files[last])[-1]
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


async def _directory_ending_with(seed: int, last: str) -> tuple[dict[str, bytes], PersistedState]:
    """A finished directory whose last record is a ``SNAPSHOT`` record (``last="local"``) or a
    batch installing a leader's snapshot (``"installed"``); the previous snapshot file is gone.
    Returns the files and the state they hold."""
    fs = SimFileSystem(dirs=[DIR])
    storage = await FileStorage.open(DIR, segment_bytes=SEGMENT_BYTES, thread_io="never", fs=fs)
    for op in workload(seed, 150):
        await apply(storage, op)
    if last == "local":
        expected = await end_with_local_snapshot(storage)
    else:
        before = await storage.load()
        hs = before.hard_state
        index = max(hs.commit, before.entries[-1].index if before.entries else 0) + 5
        meta = SnapshotMetadata(index, hs.term, ConfState.of(voters=[1, 2, 3]))
        installed = Snapshot(meta, b"from the leader")
        entries = [Entry(hs.term, index + 1, data=b"after it")]
        await storage.save(
            hard_state=HardState(hs.term, hs.vote, index), entries=entries, snapshot=installed
        )
        expected = PersistedState(HardState(hs.term, hs.vote, index), installed, entries)
    await storage.aclose()
    files = fs.image()
    meta = expected.snapshot.metadata if expected.snapshot else None
    assert meta is not None
    snaps = [p for p in files if p.endswith(".snap")]
    assert snaps == [f"{DIR}/snap-{meta.term:016x}-{meta.index:016x}.snap"], "the older is gone"
    return files, expected


async def test_every_bit_flip_in_a_snapshot_record_at_the_tail_falls_back_to_the_snapshot() -> None:
    """The record naming the newest snapshot is the WAL's last and the older file is deleted:
    whatever bit of it flips, recovery comes back with everything (the snapshot file holds what
    the record named), never a state missing an acknowledged entry, never a refusal."""
    files, expected = await _directory_ending_with(14, "local")
    last = max(p for p in files if p.endswith(".wal"))
    tail = leading_frames(files[last])[-1]
    assert tail.type is RecordType.SNAPSHOT
    for pos in range(tail.offset, tail.end):
        for bit in range(8):
            damaged = bytearray(files[last])
            damaged[pos] ^= 1 << bit
            state, fs = await _open({**files, last: bytes(damaged)})
            assert state == expected, f"bit {bit} of byte {pos}: a different state"
            assert any(p.endswith(".broken") for p in fs.image())


async def test_bit_flips_in_an_installed_snapshot_at_the_tail_keep_the_snapshot() -> None:
    """The last record installed a leader's snapshot (with an entry after it): a flip there
    loses that record like any damaged last record, but the snapshot it named, already on
    disk and committed, is kept, with nothing invented: the same term and vote, the commit at
    the snapshot. Or recovery refuses, saying why."""
    files, expected = await _directory_ending_with(15, "installed")
    snapshot = expected.snapshot
    assert snapshot is not None
    last = max(p for p in files if p.endswith(".wal"))
    tail = leading_frames(files[last])[-1]
    rng = random.Random(7)
    hs = expected.hard_state  # the same term and vote as before the last record
    adopted = 0
    for pos in range(tail.offset, tail.end):
        damaged = bytearray(files[last])
        damaged[pos] ^= 1 << rng.randrange(8)
        try:
            state, _ = await _open({**files, last: bytes(damaged)})
        except StorageMismatch as exc:
            assert "is named in the WAL but missing" in str(exc), exc
            continue
        assert state.snapshot == snapshot and state.entries == []
        assert state.hard_state == HardState(hs.term, hs.vote, snapshot.metadata.index)
        adopted += 1
    assert adopted > 0


async def test_a_lost_tail_with_a_newer_unsaved_sink_file_falls_back_to_that_file() -> None:
    """The snapshot sink's order leaves a state the older order never did: a complete, named
    snapshot file newer than any the WAL names (written beside the saves, its record not yet
    appended). When the WAL's tail is then lost from the record that named the previous
    snapshot on (its predecessor deleted), recovery falls back to the newest file: the unsaved
    one. It holds committed state up to its index, and is adopted as any newer file would be:
    its entries covered, the commit index raised to it, nothing invented."""
    fs = SimFileSystem(dirs=[DIR])
    storage = await FileStorage.open(DIR, segment_bytes=SEGMENT_BYTES, thread_io="never", fs=fs)
    for op in workload(16, 150):
        await apply(storage, op)
    expected = await end_with_local_snapshot(storage)
    assert expected.snapshot is not None
    hs, named = expected.hard_state, expected.snapshot.metadata
    tail = [Entry(hs.term, named.index + i, data=b"after %d" % i) for i in (1, 2, 3)]
    commit = HardState(hs.term, hs.vote, tail[-1].index)
    await storage.save(hard_state=commit, entries=tail, snapshot=None)
    newer_meta = SnapshotMetadata(tail[1].index, hs.term, named.conf_state)
    sink = storage.begin_snapshot(newer_meta)
    await sink.write(b"state at the newer index")
    newer = await sink.finish()
    assert newer is not None
    await storage.aclose()  # stopped, in effect, before its record: it is not in force
    files = fs.image()
    last = max(p for p in files if p.endswith(".wal"))
    naming = leading_frames(files[last])[-2]  # the SNAPSHOT record; the tail's batch follows
    assert naming.type is RecordType.SNAPSHOT
    for cut in range(naming.offset, naming.end):
        state, _ = await _open({**files, last: files[last][:cut]})
        assert state.snapshot == newer and state.entries == [], f"cut at {cut}"
        assert state.hard_state == HardState(hs.term, hs.vote, newer_meta.index), f"cut at {cut}"
