"""Snapshot sinks: a snapshot file written beside the WAL's saves, paced, put in force later.

The crash enumeration (``test_storage_crash.py``) covers the write order; this covers the rest
of the contract on the real file system: what a sink returns, that it never holds the data whole,
that saving its snapshot writes only the WAL record, that ``abort`` drops the file (finished or
not) and that loading returns a snapshot over the file instead of its bytes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import trio

from raftkv import StorageFailed
from raftkv.core import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftkv.storage import FaultyFileSystem, FileStorage, OsFileSystem, StoredSnapshot

CONF = ConfState((1, 2, 3))


def meta(index: int, term: int = 1) -> SnapshotMetadata:
    return SnapshotMetadata(index, term, CONF)


async def _storage_with_log(path: Path, n: int = 20, **kw: object) -> FileStorage:
    storage = await FileStorage.open(path, segment_bytes=1 << 16, **kw)  # type: ignore[arg-type]
    entries = [Entry(1, i, data=b"entry %d" % i) for i in range(1, n + 1)]
    await storage.save(hard_state=HardState(1, 1, n), entries=entries, snapshot=None)
    return storage


async def _write(storage: FileStorage, m: SnapshotMetadata, data: bytes, piece: int) -> Snapshot:
    sink = storage.begin_snapshot(m)
    for start in range(0, len(data), piece):
        await sink.write(data[start : start + piece])
    snapshot = await sink.finish()
    assert snapshot is not None
    return snapshot


async def test_a_sink_snapshot_is_saved_by_its_record_alone(tmp_path: Path) -> None:
    storage = await _storage_with_log(tmp_path, snapshot_pace_bytes=4096)
    data = os.urandom(50_000)
    snapshot = await _write(storage, meta(10), data, 1000)
    assert isinstance(snapshot, StoredSnapshot)
    assert snapshot == Snapshot(meta(10), data)
    assert sorted(p.name for p in tmp_path.glob("*.snap")) == [f"snap-{1:016x}-{10:016x}.snap"]
    written = storage.statistics().bytes_written
    await storage.save_snapshot(snapshot)
    assert storage.statistics().bytes_written - written < 200  # the record, not the file
    await storage.aclose()
    again = await FileStorage.open(tmp_path)
    state = await again.load()
    assert isinstance(state.snapshot, StoredSnapshot)
    assert state.snapshot == Snapshot(meta(10), data)
    assert [e.index for e in state.entries] == list(range(11, 21))
    await again.aclose()


async def test_a_sink_writes_and_syncs_a_pace_at_a_time(tmp_path: Path) -> None:
    """Never more than the pace plus one piece buffered; one sync per pace written."""
    storage = await _storage_with_log(tmp_path, snapshot_pace_bytes=8192)
    sink = storage.begin_snapshot(meta(10))
    for _ in range(40):
        await sink.write(b"x" * 1000)
        assert sink._buffered < 8192 + 1000
    assert sink.syncs == 40_000 // 8192
    assert await sink.finish() is not None
    await storage.aclose()


async def test_a_sink_runs_beside_saves(tmp_path: Path) -> None:
    """The WAL keeps taking synced saves while a sink writes in its worker thread."""
    storage = await _storage_with_log(tmp_path, snapshot_pace_bytes=1 << 16)
    data = os.urandom(1 << 21)
    saves = 0
    done = trio.Event()

    async def keep_saving() -> None:
        nonlocal saves
        i = 21
        while not done.is_set():
            await storage.save(
                hard_state=HardState(1, 1, i), entries=[Entry(1, i, data=b"v")], snapshot=None
            )
            i += 1
            saves += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep_saving)
        snapshot = await _write(storage, meta(15), data, 1 << 16)
        done.set()
    await storage.save_snapshot(snapshot)
    assert saves > 0
    state = await storage.load()
    assert state.snapshot == Snapshot(meta(15), data)
    assert state.entries[0].index == 16 and state.entries[-1].index == 20 + saves
    await storage.aclose()


class _GatedFs(OsFileSystem):
    """Snapshot-file writes wait for ``gate``; records the thread of every other write. Syncs
    do nothing (fast whatever the disk): only the sink can make saves move to a thread."""

    def __init__(self) -> None:
        self.snap_fds: set[int] = set()
        self.gate, self.entered = threading.Event(), threading.Event()
        self.wal_threads: list[int] = []

    def create(self, path: str) -> int:
        fd = super().create(path)
        if ".snap" in path:
            self.snap_fds.add(fd)
        return fd

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        if fd in self.snap_fds:
            self.entered.set()
            assert self.gate.wait(30)
        else:
            self.wal_threads.append(threading.get_ident())
        super().pwrite(fd, data, offset)

    def fdatasync(self, fd: int) -> None:
        pass


async def test_saves_go_to_a_worker_thread_while_a_sink_writes(tmp_path: Path) -> None:
    """A WAL sync behind a snapshot file's write-back waits for it: saves leave the event loop
    then, and come back once the sink's write is done."""
    fs = _GatedFs()
    storage = await _storage_with_log(tmp_path, snapshot_pace_bytes=4096, fs=fs)
    loop_thread = threading.get_ident()

    async def save(i: int) -> list[int]:
        fs.wal_threads.clear()
        await storage.save(
            hard_state=HardState(1, 1, i), entries=[Entry(1, i, data=b"v")], snapshot=None
        )
        return fs.wal_threads

    assert await save(21) == [loop_thread]
    sink = storage.begin_snapshot(meta(10))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink.write, b"x" * 8192)  # a pace's worth: written and synced now
        await trio.to_thread.run_sync(fs.entered.wait)
        threads = await save(22)
        assert threads and loop_thread not in threads
        fs.gate.set()
    assert await sink.finish() is not None
    assert await save(23) == [loop_thread]
    await storage.aclose()


class _UnlinkThreadFs(OsFileSystem):
    def __init__(self) -> None:
        self.unlinked: list[tuple[str, int]] = []

    def unlink(self, path: str) -> None:
        self.unlinked.append((os.path.basename(path), threading.get_ident()))
        super().unlink(path)


async def test_the_replaced_snapshot_file_is_removed_off_the_event_loop(tmp_path: Path) -> None:
    """Removing a large file takes tens of milliseconds: not on the raft loop's thread."""
    fs = _UnlinkThreadFs()
    storage = await _storage_with_log(tmp_path, fs=fs)
    await storage.save_snapshot(await _write(storage, meta(10), b"a" * 10_000, 1000))
    await storage.save_snapshot(await _write(storage, meta(15), b"b" * 10_000, 1000))
    first = f"snap-{1:016x}-{10:016x}.snap"
    threads = [thread for name, thread in fs.unlinked if name == first]
    assert threads and threading.get_ident() not in threads
    assert not (tmp_path / first).exists()
    await storage.aclose()


async def test_abort_drops_the_file_finished_or_not(tmp_path: Path) -> None:
    storage = await _storage_with_log(tmp_path, snapshot_pace_bytes=4096)
    sink = storage.begin_snapshot(meta(8))
    await sink.write(b"y" * 10_000)
    assert list(tmp_path.glob("*.tmp"))
    sink.abort()
    assert not list(tmp_path.glob("*.tmp"))
    sink = storage.begin_snapshot(meta(9))
    await sink.write(b"z" * 100)
    assert await sink.finish() is not None
    assert list(tmp_path.glob("*.snap"))
    sink.abort()  # a newer snapshot came first: this one will not be saved
    assert not list(tmp_path.glob("*.snap"))
    sink.abort()  # more than once is fine
    await storage.aclose()


async def test_abort_keeps_a_snapshot_in_force(tmp_path: Path) -> None:
    storage = await _storage_with_log(tmp_path)
    sink = storage.begin_snapshot(meta(9))
    await sink.write(b"z" * 100)
    snapshot = await sink.finish()
    assert snapshot is not None
    await storage.save_snapshot(snapshot)
    sink.abort()
    assert (await storage.load()).snapshot == Snapshot(meta(9), b"z" * 100)
    await storage.aclose()


async def test_a_second_sink_of_a_written_snapshot_keeps_the_first(tmp_path: Path) -> None:
    """The leader sent the same snapshot twice: the second spool finds it written already."""
    storage = await _storage_with_log(tmp_path)
    first = await _write(storage, meta(12), b"state", 2)
    second = storage.begin_snapshot(meta(12))
    await second.write(b"state")
    assert await second.finish() is None
    assert not list(tmp_path.glob("*.tmp"))
    await storage.save(hard_state=HardState(1, 1, 12), entries=[], snapshot=first)
    assert (await storage.load()).snapshot == Snapshot(meta(12), b"state")
    await storage.aclose()


async def test_a_sink_that_fails_stops_the_storage(tmp_path: Path) -> None:
    fs = FaultyFileSystem(OsFileSystem())
    storage = await _storage_with_log(tmp_path, snapshot_pace_bytes=4096, fs=fs)
    fs.fail("fdatasync")
    sink = storage.begin_snapshot(meta(10))
    with pytest.raises(StorageFailed, match=r"snap-.*\.snap\.tmp"):
        await sink.write(b"w" * 5000)
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(StorageFailed):
        await storage.save(hard_state=HardState(2), entries=[], snapshot=None)
    await storage.aclose()


async def test_a_plain_snapshot_is_still_written_by_save_snapshot(tmp_path: Path) -> None:
    storage = await _storage_with_log(tmp_path)
    await storage.save_snapshot(Snapshot(meta(5), b"plain"))
    assert (await storage.load()).snapshot == Snapshot(meta(5), b"plain")
    await storage.aclose()


async def test_a_stored_snapshot_stays_readable_once_replaced(tmp_path: Path) -> None:
    """A snapshot being sent to a follower keeps its bytes though a newer one deleted its file."""
    storage = await _storage_with_log(tmp_path)
    old = await _write(storage, meta(5), b"old state", 4)
    await storage.save_snapshot(old)
    new = await _write(storage, meta(10), b"new state", 4)
    await storage.save_snapshot(new)
    assert [p.name for p in tmp_path.glob("*.snap")] == [f"snap-{1:016x}-{10:016x}.snap"]
    assert old.data == b"old state"
    await storage.aclose()
