"""Failures: a failed write or sync stops the storage; an inconsistent directory is refused."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import trio
from storage_workload import assert_refuses

from raftkv import CorruptLog, StorageError, StorageFailed, StorageMismatch
from raftkv.core import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftkv.storage import (
    FaultyFileSystem,
    FileStorage,
    MemoryStorage,
    OsFileSystem,
    SimFileSystem,
)
from raftkv.storage._records import RecordType, SegmentHeader, encode_batch
from raftkv.storage._wal import WalWriter, create_segment


def E(index: int, term: int = 1) -> Entry:
    return Entry(term, index, data=b"v%d" % index)


def snap(index: int) -> Snapshot:
    return Snapshot(SnapshotMetadata(index, 1, ConfState((1,))), b"state")


@pytest.mark.parametrize("op", ["fdatasync", "pwrite"])
async def test_a_failed_write_or_sync_raises_and_the_storage_refuses_from_then_on(
    tmp_path: Path, op: str
) -> None:
    fs = FaultyFileSystem(OsFileSystem())
    storage = await FileStorage.open(tmp_path, fs=fs)
    await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1)], snapshot=None)
    fs.fail(op)
    with pytest.raises(StorageFailed) as info:
        await storage.save(hard_state=HardState(1, 1, 1), entries=[E(2)], snapshot=None)
    assert isinstance(info.value.__cause__, OSError)
    await assert_refuses(storage)
    # What was durable before the failure is still there.
    async with await FileStorage.open(tmp_path) as again:
        state = await again.load()
    assert state.entries[:1] == [E(1)]


async def test_a_failed_sync_is_never_retried(tmp_path: Path) -> None:
    fs = FaultyFileSystem(OsFileSystem())
    storage = await FileStorage.open(tmp_path, fs=fs)
    fs.fail("fdatasync")
    with pytest.raises(StorageFailed):
        await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1)], snapshot=None)
    syncs = fs.calls["fdatasync"]
    with pytest.raises(StorageFailed):
        await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1)], snapshot=None)
    await storage.aclose()
    assert fs.calls["fdatasync"] == syncs


@pytest.mark.parametrize(
    ("op", "after"),
    [("fdatasync", 1), ("create", 0), ("rename", 0), ("fsync_dir", 0)],
)
async def test_a_failure_while_writing_a_snapshot_file_stops_the_storage(
    tmp_path: Path, op: str, after: int
) -> None:
    fs = FaultyFileSystem(OsFileSystem())
    storage = await FileStorage.open(tmp_path, fs=fs)
    await storage.save(hard_state=HardState(1, 1, 3), entries=[E(1), E(2), E(3)], snapshot=None)
    fs.fail(op, after=after)
    with pytest.raises(StorageFailed):
        await storage.save_snapshot(snap(3))
    await assert_refuses(storage)


async def test_a_failure_during_segment_rollover_stops_the_storage(tmp_path: Path) -> None:
    fs = FaultyFileSystem(OsFileSystem())
    storage = await FileStorage.open(tmp_path, fs=fs, segment_bytes=4096)
    fs.fail("create")  # the next segment cannot be created
    with pytest.raises(StorageFailed):
        for i in range(1, 200):
            await storage.save(hard_state=None, entries=[E(i)], snapshot=None)
    assert storage.statistics().segments == 1
    await assert_refuses(storage)


async def test_disk_full_is_a_failure_too(tmp_path: Path) -> None:
    fs = FaultyFileSystem(OsFileSystem())
    storage = await FileStorage.open(tmp_path, fs=fs)
    fs.fail("pwrite", error=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(StorageFailed, match="No space left"):
        await storage.save(hard_state=HardState(1), entries=[], snapshot=None)
    await storage.aclose()


async def test_memory_storage_failure_injection() -> None:
    storage = MemoryStorage()
    storage.inject_failure(after=1)
    await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1)], snapshot=None)
    with pytest.raises(StorageFailed):
        await storage.save(hard_state=HardState(1, 1, 1), entries=[E(2)], snapshot=None)
    await assert_refuses(storage)
    assert (await storage.crash().load()).entries == [E(1)]


# -- directories that must be refused ---------------------------------------------------------


async def _directory(tmp_path: Path, n: int = 120, *, snapshot: bool = True) -> Path:
    async with await FileStorage.open(tmp_path, segment_bytes=4096) as storage:
        for i in range(1, n + 1):
            await storage.save(
                hard_state=HardState(1, 1, i), entries=[Entry(1, i, data=b"x" * 90)], snapshot=None
            )
        if snapshot:
            await storage.save_snapshot(snap(n // 2))
    return tmp_path


def _segments(path: Path) -> list[Path]:
    return sorted(path.glob("*.wal"))


async def test_a_missing_segment_is_refused(tmp_path: Path) -> None:
    path = await _directory(tmp_path)
    segments = _segments(path)
    segments[len(segments) // 2].unlink()
    with pytest.raises(StorageMismatch, match="missing"):
        await FileStorage.open(path)


async def test_a_missing_first_segment_is_refused(tmp_path: Path) -> None:
    """Unless a snapshot covers it: then it is what compaction would have deleted anyway."""
    path = await _directory(tmp_path, snapshot=False)
    _segments(path)[0].unlink()
    with pytest.raises(StorageMismatch, match="missing"):
        await FileStorage.open(path)


async def test_a_missing_snapshot_is_refused_and_nothing_is_changed(tmp_path: Path) -> None:
    path = await _directory(tmp_path)
    (path / "junk.tmp").write_bytes(b"half written")
    next(path.glob("*.snap")).unlink()
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(StorageMismatch, match="missing"):
        await FileStorage.open(path)
    assert sorted(p.name for p in path.iterdir()) == before


async def test_snapshot_files_without_a_wal_are_refused(tmp_path: Path) -> None:
    path = await _directory(tmp_path)
    for seg in _segments(path):
        seg.unlink()
    with pytest.raises(StorageMismatch, match="no WAL"):
        await FileStorage.open(path)


async def test_damage_before_the_tail_names_the_file_and_offset(tmp_path: Path) -> None:
    path = await _directory(tmp_path)
    victim = _segments(path)[1]
    data = bytearray(victim.read_bytes())
    data[200] ^= 0x10
    victim.write_bytes(bytes(data))
    with pytest.raises(CorruptLog) as info:
        await FileStorage.open(path)
    assert info.value.path == str(victim)
    assert 0 < info.value.offset <= 200
    assert str(victim) in str(info.value)


async def test_a_commit_index_beyond_the_log_is_refused() -> None:
    fs = SimFileSystem(dirs=["/d"])
    header = SegmentHeader(1, 0, None, None)
    seg, fd, offset = create_segment(fs, "/d", seq=0, first_index=1, header=header, preallocate=0)
    writer = WalWriter(
        fs,
        "/d",
        [seg],
        fd=fd,
        offset=offset,
        records_start=offset,
        hard_state=None,
        snapshot=None,
        segment_bytes=1 << 20,
        preallocate=False,
    )
    hs = HardState(1, 1, commit=7)
    writer.append(
        RecordType.BATCH,
        encode_batch(None, [E(1), E(2), E(3)], hs),
        hard_state=hs,
        snapshot=None,
        max_index=3,
        next_index=1,
    )
    writer.close()
    with pytest.raises(StorageMismatch, match="commit index 7 is beyond the log's last index 3"):
        await FileStorage.open("/d", fs=fs, thread_io="never")


async def test_an_unknown_format_version_is_refused() -> None:
    fs = SimFileSystem(dirs=["/d"])
    _, fd, _ = create_segment(
        fs, "/d", seq=0, first_index=1, header=SegmentHeader(99, 0, None, None), preallocate=0
    )
    fs.close(fd)
    with pytest.raises(StorageMismatch, match="version 99"):
        await FileStorage.open("/d", fs=fs, thread_io="never")


async def test_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    async with await FileStorage.open(tmp_path):
        with pytest.raises(StorageError, match="in use"):
            await FileStorage.open(tmp_path)
    async with await FileStorage.open(tmp_path):
        pass  # released on close


async def test_leftover_temporary_and_orphan_snapshot_files_are_removed(tmp_path: Path) -> None:
    path = await _directory(tmp_path)
    (path / "snap-0000000000000001-00000000000003e8.snap").write_bytes(b"orphan")
    (path / "0000000000000099-0000000000000001.wal.tmp").write_bytes(b"half")
    async with await FileStorage.open(path) as storage:
        state = await storage.load()
    assert state.snapshot == snap(60)
    names = os.listdir(path)
    assert not [n for n in names if n.endswith(".tmp")]
    assert [n for n in names if n.endswith(".snap")] == [
        "snap-0000000000000001-000000000000003c.snap"
    ]


async def test_two_tasks_at_once_are_refused(tmp_path: Path) -> None:
    """One task at a time, as the contract says; a second one is told, not interleaved."""
    storage = await FileStorage.open(tmp_path, thread_io="always")
    refused = []

    async def save(i: int) -> None:
        try:
            await storage.save(hard_state=HardState(1, 1, 0), entries=[E(i)], snapshot=None)
        except trio.BusyResourceError:
            refused.append(i)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(save, 1)
        nursery.start_soon(save, 1)
    assert len(refused) == 1
    await storage.aclose()
