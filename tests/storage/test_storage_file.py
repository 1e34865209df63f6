"""FileStorage specifics: a lean write path, where I/O runs, rollover, what compaction frees."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from storage_workload import Model, apply, workload

from raftkv.core import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftkv.storage import FaultyFileSystem, FileStorage, OsFileSystem, ThreadIO


def E(index: int, size: int = 100) -> Entry:
    return Entry(1, index, data=b"d" * size)


def snap(index: int) -> Snapshot:
    return Snapshot(SnapshotMetadata(index, 1, ConfState((1, 2, 3))), b"s" * 500)


async def test_a_synced_save_is_one_write_and_one_sync(tmp_path: Path) -> None:
    fs = FaultyFileSystem(OsFileSystem())
    storage = await FileStorage.open(tmp_path, fs=fs)
    before = dict(fs.calls)
    for i in range(10):
        batch = [E(16 * i + j + 1) for j in range(16)]
        await storage.save(hard_state=HardState(1, 1, 16 * i), entries=batch, snapshot=None)
    assert fs.calls["pwrite"] - before["pwrite"] == 10
    assert fs.calls["fdatasync"] - before["fdatasync"] == 10
    # Unsynced saves cost nothing now; the next synced save carries them in its one record.
    for i in range(5):
        await storage.save(
            hard_state=HardState(1, 1, 155 + i), entries=[], snapshot=None, sync=False
        )
    assert fs.calls["pwrite"] - before["pwrite"] == 10
    await storage.save(hard_state=None, entries=[E(161)], snapshot=None)
    assert fs.calls["pwrite"] - before["pwrite"] == 11
    assert fs.calls["fdatasync"] - before["fdatasync"] == 11
    # An empty Ready costs nothing at all.
    await storage.save(hard_state=None, entries=[], snapshot=None)
    assert fs.calls["fdatasync"] - before["fdatasync"] == 11
    await storage.aclose()
    async with await FileStorage.open(tmp_path) as again:
        state = await again.load()
    assert state.hard_state == HardState(1, 1, 159)
    assert len(state.entries) == 161


class _ThreadRecorder(OsFileSystem):
    """Notes which thread each fdatasync ran on."""

    def __init__(self) -> None:
        self.main = threading.get_ident()
        self.where: list[str] = []

    def fdatasync(self, fd: int) -> None:
        self.where.append("loop" if threading.get_ident() == self.main else "thread")
        super().fdatasync(fd)


async def test_auto_keeps_small_batches_on_the_loop_and_heavy_work_in_a_thread(
    tmp_path: Path,
) -> None:
    fs = _ThreadRecorder()
    storage = await FileStorage.open(tmp_path, fs=fs)
    assert set(fs.where) <= {"thread"}  # recovery and the first segment
    fs.where.clear()
    await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1)], snapshot=None)
    assert fs.where == ["loop"]
    fs.where.clear()
    await storage.save_snapshot(snap(1))  # snapshot file + record
    big = [E(i, size=4096) for i in range(2, 100)]  # 400 KiB: encoded off the loop
    await storage.save(hard_state=None, entries=big, snapshot=None)
    assert set(fs.where) == {"thread"}
    await storage.aclose()


@pytest.mark.parametrize("thread_io", ["always", "never"])
async def test_every_thread_mode_keeps_the_contract(tmp_path: Path, thread_io: ThreadIO) -> None:
    model = Model()
    storage = await FileStorage.open(tmp_path, segment_bytes=4096, thread_io=thread_io)
    for op in workload(5, 200):
        await apply(storage, op)
        model.step(op)
    await storage.aclose()
    model.close()
    async with await FileStorage.open(tmp_path, segment_bytes=4096) as again:
        assert await again.load() == model.durable()


async def test_segments_roll_over_and_are_named_in_sequence(tmp_path: Path) -> None:
    async with await FileStorage.open(tmp_path, segment_bytes=4096) as storage:
        for i in range(1, 201):
            await storage.save(hard_state=None, entries=[E(i)], snapshot=None)
        stats = storage.statistics()
    names = sorted(p.name for p in tmp_path.glob("*.wal"))
    assert stats.segments == len(names) >= 5
    seqs = [int(n.split("-")[0], 16) for n in names]
    assert seqs == list(range(len(names)))
    # A finished segment ends at its last record; only the last one is preallocated.
    sizes = [(tmp_path / n).stat().st_size for n in names]
    assert all(s <= 4096 for s in sizes[:-1]) and sizes[-1] == 4096


async def test_compaction_frees_segments_and_old_snapshot_files(tmp_path: Path) -> None:
    async with await FileStorage.open(tmp_path, segment_bytes=4096) as storage:
        for i in range(1, 301):
            await storage.save(hard_state=HardState(1, 1, i), entries=[E(i)], snapshot=None)
        await storage.save_snapshot(snap(100))
        await storage.save_snapshot(snap(250))
        before = storage.statistics().segments
        await storage.compact(200)  # keep a catch-up tail from 200
        after = storage.statistics()
        state = await storage.load()
    assert after.segments < before
    assert after.snapshot_index == 250
    assert [p.name for p in tmp_path.glob("*.snap")] == [f"snap-{1:016x}-{250:016x}.snap"]
    assert state.entries[0].index == 251
    # Entries from 200 on are still on disk (the catch-up tail), even though load skips them.
    first_seq_name = min(p.name for p in tmp_path.glob("*.wal"))
    assert int(first_seq_name.removesuffix(".wal").split("-")[1], 16) <= 200
