"""Record framing, snapshot references and the simulated file system's crash semantics."""

from __future__ import annotations

import logging
import random

import pytest

from raftkv.core import ConfState, Entry, EntryType, HardState, SnapshotMetadata
from raftkv.storage import FileStorage, SimFileSystem
from raftkv.storage._records import (
    OVERHEAD,
    Frame,
    RecordType,
    SnapshotRef,
    decode_batch,
    decode_hard_state_field,
    encode_batch,
    find_frame,
    frame,
    read_frame,
)


def test_frame_round_trip() -> None:
    ref = SnapshotRef(SnapshotMetadata(5, 2, ConfState((1, 2))), "snap-x.snap", 123, 456)
    entries = [Entry(2, 6, EntryType.NORMAL, b"a"), Entry(2, 7, EntryType.CONF_CHANGE, b"")]
    payload = encode_batch(ref, entries, HardState(2, 1, 6))
    buf = b"\0" * 10 + frame(RecordType.BATCH, payload, 10)
    rec = read_frame(buf, 10)
    assert isinstance(rec, Frame)
    assert (rec.type, rec.offset, rec.end) == (RecordType.BATCH, 10, len(buf))
    batch = decode_batch(rec.payload)
    hs = decode_hard_state_field(batch.raw_hard_state)
    assert (batch.snapshot, batch.entries, hs) == (ref, entries, HardState(2, 1, 6))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[:-1], "past the end"),
        (lambda b: b[:10], "truncated record"),
        (lambda b: b"X" + b[1:], "bad magic"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum"),
        (lambda b: b[:4] + b"\x09" + b[5:], "bad record header"),
    ],
)
def test_read_frame_says_why(damage: object, reason: str) -> None:
    good = frame(RecordType.BATCH, encode_batch(None, [Entry(1, 1)], None), 0)
    assert callable(damage)
    result = read_frame(damage(good), 0)
    assert isinstance(result, str) and reason in result


def test_a_record_copied_into_data_is_not_a_record_there() -> None:
    inner = frame(RecordType.BATCH, encode_batch(None, [Entry(1, 1)], None), 0)
    assert isinstance(read_frame(inner, 0), Frame)
    outer = frame(RecordType.BATCH, encode_batch(None, [Entry(1, 1, data=inner)], None), 0)
    assert find_frame(outer, 1) == -1  # the copy claims offset 0, but sits elsewhere
    assert read_frame(b"\0" * 7 + inner, 7) == "record claims offset 0"


async def test_a_torn_record_carrying_a_wal_copy_is_still_a_torn_tail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An entry may hold anything, even WAL bytes; a torn tail stays a torn tail."""
    caplog.set_level(logging.ERROR, logger="raftkv.storage")
    fs = SimFileSystem(dirs=["/d"])
    storage = await FileStorage.open("/d", fs=fs, thread_io="never", preallocate=False)
    await storage.save(hard_state=HardState(1, 1, 0), entries=[Entry(1, 1)], snapshot=None)
    await storage.aclose()
    (wal,) = fs.image()
    copy = fs.image()[wal]  # a whole segment, header and records, as an entry's data
    storage = await FileStorage.open("/d", fs=fs, thread_io="never", preallocate=False)
    await storage.save(hard_state=None, entries=[Entry(1, 2, data=copy * 3)], snapshot=None)
    await storage.aclose()
    full = fs.image()[wal]
    torn = full[: len(full) - 10]
    state = await _open({wal: torn})
    assert state.entries == [Entry(1, 1)]


async def _open(files: dict[str, bytes]) -> object:
    fs = SimFileSystem(files, dirs=["/d"])
    storage = await FileStorage.open("/d", fs=fs, thread_io="never", preallocate=False)
    state = await storage.load()
    await storage.aclose()
    return state


def test_record_overhead_is_stable() -> None:
    assert OVERHEAD == 24  # part of the on-disk format (docs/storage.md)


# -- SimFileSystem ----------------------------------------------------------------------------


def _fs_with_one_synced_and_one_unsynced_write() -> SimFileSystem:
    fs = SimFileSystem(dirs=["/d"])
    fd = fs.create("/d/f")
    fs.pwrite(fd, b"synced", 0)
    fs.fdatasync(fd)
    fs.fsync_dir("/d")
    fs.pwrite(fd, b"-unsynced" * 200, 6)
    return fs


def test_sim_power_cut_keeps_what_was_synced() -> None:
    fs = _fs_with_one_synced_and_one_unsynced_write()
    rng = random.Random(0)
    assert fs.crash(rng, "lost").image() == {"/d/f": b"synced"}
    assert fs.crash(rng, "kept").image() == fs.image()
    for _ in range(50):
        for mode in ("torn", "reordered"):
            data = fs.crash(rng, mode).image()["/d/f"]  # type: ignore[arg-type]
            assert data.startswith(b"synced")
            assert len(data) <= len(fs.image()["/d/f"])


def test_sim_file_sync_does_not_make_its_name_durable() -> None:
    fs = SimFileSystem(dirs=["/d"])
    fd = fs.create("/d/f")
    fs.pwrite(fd, b"data", 0)
    fs.fdatasync(fd)
    assert fs.crash(random.Random(0), "lost").image() == {}
    fs.fsync_dir("/d")
    assert fs.crash(random.Random(0), "lost").image() == {"/d/f": b"data"}


def test_sim_rename_is_durable_only_after_a_directory_sync() -> None:
    fs = SimFileSystem({"/d/a": b"old"})
    fd = fs.create("/d/a.tmp")
    fs.pwrite(fd, b"new", 0)
    fs.fdatasync(fd)
    fs.rename("/d/a.tmp", "/d/a")
    lost = fs.crash(random.Random(0), "lost").image()
    assert lost == {"/d/a": b"old"}
    fs.fsync_dir("/d")
    assert fs.crash(random.Random(0), "lost").image() == {"/d/a": b"new"}


def test_sim_crash_at_a_point_of_the_trace() -> None:
    fs = _fs_with_one_synced_and_one_unsynced_write()
    assert fs.crash(random.Random(0), "lost", upto=1).image() == {}  # only the create ran
    assert fs.crash(random.Random(0), "kept", upto=1).image() == {"/d/f": b""}
    assert fs.crash(random.Random(0), "kept", upto=2).image() == {"/d/f": b"synced"}
