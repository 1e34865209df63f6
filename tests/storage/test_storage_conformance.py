"""The ``Storage`` contract, run against every storage: memory, files on disk, files in the sim.

Each harness knows how to open its storage and how to restart it, cleanly (``aclose`` then open
again) or after a crash (only what was durable survives).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
from storage_workload import Compact, Model, Save, SaveSnapshot, apply, workload

from raftkv.core import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata
from raftkv.storage import (
    FileStorage,
    MemoryStorage,
    PersistedState,
    SimFileSystem,
    Storage,
    open_file_storage,
)


class Harness:
    crash_safe = True  # whether restart(crash=True) is supported

    async def open(self) -> Storage:
        raise NotImplementedError

    async def restart(self, storage: Storage, *, crash: bool) -> Storage:
        raise NotImplementedError


class MemoryHarness(Harness):
    async def open(self) -> Storage:
        return MemoryStorage()

    async def restart(self, storage: Storage, *, crash: bool) -> Storage:
        assert isinstance(storage, MemoryStorage)
        if not crash:
            await storage.aclose()  # flushes pending saves: the durable state is everything
        return storage.crash()


class DiskHarness(Harness):
    """FileStorage on the real file system (threads on, tiny segments)."""

    crash_safe = False  # a process cannot crash itself here; the sim harness covers crashes

    def __init__(self, path: Path) -> None:
        self.path = path

    async def open(self) -> Storage:
        return await FileStorage.open(self.path, segment_bytes=4096)

    async def restart(self, storage: Storage, *, crash: bool) -> Storage:
        assert not crash
        await storage.aclose()
        return await self.open()


class SimHarness(Harness):
    """FileStorage on the simulated file system; a crash keeps only what was synced."""

    def __init__(self) -> None:
        self.fs = SimFileSystem(dirs=["/data"])
        self.rng = random.Random(7)

    async def open(self) -> Storage:
        return await FileStorage.open("/data", segment_bytes=4096, thread_io="never", fs=self.fs)

    async def restart(self, storage: Storage, *, crash: bool) -> Storage:
        if crash:
            self.fs = self.fs.crash(self.rng, "lost")
        else:
            await storage.aclose()
        return await self.open()


def _harness(name: str, tmp_path: Path) -> Harness:
    if name == "memory":
        return MemoryHarness()
    if name == "disk":
        return DiskHarness(tmp_path / "data")
    return SimHarness()


@pytest.fixture(params=["memory", "disk", "sim"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    return _harness(request.param, tmp_path)


@pytest.fixture(params=["memory", "sim"])
def crash_harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    """The storages whose crashes a test can cause: only what was durable survives."""
    return _harness(request.param, tmp_path)


def E(index: int, term: int = 1, data: bytes = b"") -> Entry:
    return Entry(term, index, EntryType.NORMAL, data or f"e{index}t{term}".encode())


def snap(index: int, term: int = 1, data: bytes = b"state") -> Snapshot:
    return Snapshot(SnapshotMetadata(index, term, ConfState((1, 2, 3))), data)


async def test_fresh_storage_is_empty(harness: Harness) -> None:
    storage = await harness.open()
    assert (await storage.load()).is_empty
    storage = await harness.restart(storage, crash=False)
    assert (await storage.load()).is_empty
    await storage.aclose()


async def test_round_trip_hard_state_entries_snapshot(harness: Harness) -> None:
    storage = await harness.open()
    await storage.load()
    await storage.save(hard_state=HardState(2, 3, 0), entries=[], snapshot=None)
    entries = [
        E(1),
        Entry(1, 2, EntryType.NORMAL, b""),
        Entry(2, 3, EntryType.CONF_CHANGE, b"\x01cc"),
    ]
    await storage.save(hard_state=HardState(2, 3, 2), entries=entries[:2], snapshot=None)
    await storage.save(hard_state=None, entries=entries[2:], snapshot=None)
    storage = await harness.restart(storage, crash=False)
    state = await storage.load()
    assert state == PersistedState(HardState(2, 3, 2), None, entries)
    await storage.aclose()


async def test_overwrite_of_a_suffix(harness: Harness) -> None:
    storage = await harness.open()
    await storage.save(hard_state=None, entries=[E(i) for i in range(1, 11)], snapshot=None)
    await storage.save(
        hard_state=HardState(2, 2, 5), entries=[E(6, 2), E(7, 2), E(8, 2)], snapshot=None
    )
    expected = [E(i) for i in range(1, 6)] + [E(6, 2), E(7, 2), E(8, 2)]
    assert (await storage.load()).entries == expected
    storage = await harness.restart(storage, crash=False)
    assert (await storage.load()).entries == expected
    # Overwriting at the very first index replaces everything.
    await storage.save(hard_state=HardState(3, 1, 0), entries=[E(1, 3)], snapshot=None)
    storage = await harness.restart(storage, crash=False)
    assert (await storage.load()).entries == [E(1, 3)]
    await storage.aclose()


async def test_snapshot_from_the_leader_replaces_the_log(harness: Harness) -> None:
    storage = await harness.open()
    await storage.save(hard_state=None, entries=[E(i) for i in range(1, 6)], snapshot=None)
    await storage.save(
        hard_state=HardState(2, None, 20), entries=[E(21, 2), E(22, 2)], snapshot=snap(20, 2)
    )
    storage = await harness.restart(storage, crash=False)
    state = await storage.load()
    assert state == PersistedState(HardState(2, None, 20), snap(20, 2), [E(21, 2), E(22, 2)])
    await storage.aclose()


async def test_local_snapshot_and_compaction_keep_the_log_after_it(harness: Harness) -> None:
    storage = await harness.open()
    big = b"x" * 300  # several segments' worth
    for i in range(1, 61):
        await storage.save(hard_state=HardState(1, 1, i), entries=[E(i, data=big)], snapshot=None)
    await storage.save_snapshot(snap(40))
    await storage.compact(30)
    state = await storage.load()
    assert state.snapshot == snap(40)
    assert [e.index for e in state.entries] == list(range(41, 61))
    storage = await harness.restart(storage, crash=False)
    assert await storage.load() == state
    # Compacting past the snapshot releases no more than the snapshot covers.
    await storage.compact(1000)
    storage = await harness.restart(storage, crash=False)
    assert await storage.load() == state
    await storage.aclose()


async def test_unsynced_saves_survive_a_clean_close(harness: Harness) -> None:
    storage = await harness.open()
    await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1), E(2)], snapshot=None)
    await storage.save(hard_state=HardState(1, 1, 2), entries=[], snapshot=None, sync=False)
    storage = await harness.restart(storage, crash=False)
    assert (await storage.load()).hard_state == HardState(1, 1, 2)
    await storage.aclose()


async def test_unsynced_saves_are_lost_in_a_crash_until_a_synced_save(
    crash_harness: Harness,
) -> None:
    harness = crash_harness
    storage = await harness.open()
    await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1), E(2)], snapshot=None)
    await storage.save(hard_state=HardState(1, 1, 2), entries=[E(3)], snapshot=None, sync=False)
    storage = await harness.restart(storage, crash=True)
    assert await storage.load() == PersistedState(HardState(1, 1, 0), None, [E(1), E(2)])
    await storage.save(hard_state=HardState(1, 1, 1), entries=[E(3, 1)], snapshot=None, sync=False)
    await storage.save(hard_state=None, entries=[E(4)], snapshot=None)  # syncs both
    storage = await harness.restart(storage, crash=True)
    state = await storage.load()
    assert state == PersistedState(HardState(1, 1, 1), None, [E(1), E(2), E(3, 1), E(4)])
    await storage.aclose()


async def test_misuse_raises_and_leaves_the_storage_usable(harness: Harness) -> None:
    storage = await harness.open()
    await storage.save(hard_state=None, entries=[E(1), E(2)], snapshot=None)
    with pytest.raises(ValueError, match="gap"):
        await storage.save(hard_state=None, entries=[E(4)], snapshot=None)
    with pytest.raises(ValueError, match="contiguous"):
        await storage.save(hard_state=None, entries=[E(3), E(5)], snapshot=None)
    await storage.save_snapshot(snap(2))
    with pytest.raises(ValueError, match="not newer"):
        await storage.save_snapshot(snap(2))
    with pytest.raises(ValueError, match="not newer"):
        await storage.save(hard_state=None, entries=[], snapshot=snap(1))
    await storage.save(hard_state=None, entries=[E(3)], snapshot=None)
    storage = await harness.restart(storage, crash=False)
    assert (await storage.load()).entries == [E(3)]
    await storage.aclose()


async def test_calls_after_aclose_are_refused(harness: Harness) -> None:
    storage = await harness.open()
    await storage.aclose()
    await storage.aclose()  # idempotent
    with pytest.raises(trio.ClosedResourceError):
        await storage.save(hard_state=HardState(1), entries=[], snapshot=None)
    with pytest.raises(trio.ClosedResourceError):
        await storage.load()


@pytest.mark.parametrize("seed", range(3))
async def test_restart_returns_exactly_what_was_saved_durably(harness: Harness, seed: int) -> None:
    rng = random.Random(seed)
    model = Model()
    storage = await harness.open()
    for op in workload(seed, 250):
        await apply(storage, op)
        model.step(op)
        if rng.random() < 0.08:
            # A crash loses unsynced entries, which the rest of the workload builds on.
            crash = harness.crash_safe and rng.random() < 0.5
            crash = crash and not any(p.entries for p in model.pending)
            storage = await harness.restart(storage, crash=crash)
            model.crash() if crash else model.close()
            assert await storage.load() == model.durable()
    storage = await harness.restart(storage, crash=False)
    model.close()
    assert await storage.load() == model.durable()
    await storage.aclose()


async def test_load_after_saves_reads_the_durable_state(harness: Harness) -> None:
    storage = await harness.open()
    await storage.load()
    await storage.save(hard_state=HardState(1, 1, 1), entries=[E(1)], snapshot=None)
    await storage.save(hard_state=HardState(1, 1, 1), entries=[E(2)], snapshot=None, sync=False)
    assert await storage.load() == PersistedState(HardState(1, 1, 1), None, [E(1)])
    await storage.aclose()


def test_every_storage_satisfies_the_protocol() -> None:
    assert issubclass(MemoryStorage, Storage)
    assert issubclass(FileStorage, Storage)


async def test_open_file_storage_closes_on_exit(tmp_path: Path) -> None:
    async with open_file_storage(tmp_path / "d") as storage:
        await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1)], snapshot=None)
        await storage.save(hard_state=HardState(1, 1, 1), entries=[], snapshot=None, sync=False)
    with pytest.raises(trio.ClosedResourceError):
        await storage.load()
    async with await FileStorage.open(tmp_path / "d") as again:
        assert (await again.load()).hard_state == HardState(1, 1, 1)


async def test_compaction_bounds_the_disk(tmp_path: Path) -> None:
    """Under a steady load with snapshots and compaction, the segment count stays flat."""
    counts = []
    async with open_file_storage(tmp_path / "d", segment_bytes=8192) as storage:
        for i in range(1, 2001):
            await storage.save(
                hard_state=HardState(1, 1, i), entries=[E(i, data=b"v" * 100)], snapshot=None
            )
            if i % 200 == 0:
                await storage.save_snapshot(snap(i))
                await storage.compact(i - 50)
                counts.append(storage.statistics().segments)
        names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert max(counts[2:]) <= 6, counts
    assert [n for n in names if n.endswith(".snap")] == [
        "snap-" + "0" * 15 + "1-" + f"{2000:016x}.snap"
    ]


def test_memory_workload_model_is_not_vacuous() -> None:
    ops = list(workload(0, 300))
    kinds = {type(op).__name__ for op in ops}
    assert kinds == {
        "Save",
        "SaveSnapshot",
        "Compact",
        "SinkBegin",
        "SinkWrite",
        "SinkFinish",
        "SinkAbort",
    }
    assert any(isinstance(op, SaveSnapshot) and op.via_sink for op in ops)
    assert any(isinstance(op, Save) and op.via_sink for op in ops)
    assert any(isinstance(op, Save) and op.snapshot for op in ops)
    assert any(isinstance(op, Save) and not op.sync for op in ops)
    assert any(isinstance(op, SaveSnapshot) for op in ops)
    assert any(isinstance(op, Compact) for op in ops)
