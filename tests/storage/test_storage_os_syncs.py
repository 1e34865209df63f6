"""The real file-system layer syncs: watched at the ``os`` module, below ``OsFileSystem``.

The crash enumeration proves the write ordering on the simulated file system only; this proves
that ``OsFileSystem`` really issues those syncs to the operating system. ``os.pwrite``,
``os.fdatasync``, ``os.fsync``, ``os.rename``, ... are wrapped (the storage's own methods are
left alone) and every durable operation of a Raft-shaped workload is checked when it returns:

- every file written (data, size, preallocation) was then fdatasync'd or fsync'd;
- every name created, renamed or removed in a directory was followed by an fsync of that
  directory; the one documented exception is deleting the previous snapshot file;
- and in the order recovery relies on: a snapshot file is synced, renamed and its directory
  synced before the WAL record naming it is written (a sink's file when the sink finishes,
  before any record names it; the save then writes only the record); a new segment is synced
  before its name
  appears, the previous one truncated and synced first; each segment deleted by compaction is
  followed by a directory sync before the next goes.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from storage_workload import (
    Compact,
    Save,
    SaveSnapshot,
    SinkAbort,
    SinkBegin,
    SinkFinish,
    SinkWrite,
    apply,
    end_with_local_snapshot,
    workload,
)

from raftkv.storage import FileStorage, ThreadIO

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="names descriptors through /proc/self/fd"
)

Key = tuple[int, int]  # (st_dev, st_ino)


@dataclass(frozen=True)
class Event:
    op: str  # write, sync, rename, unlink, create, mkdir
    path: str  # the file (or directory, for a directory sync) it concerns
    dst: str = ""  # rename only


@dataclass
class OsWatcher:
    """Records what reaches the operating system, and what is not durable yet."""

    root: str
    events: list[Event] = field(default_factory=list)
    dirty_files: dict[Key, str] = field(default_factory=dict)
    # Directory -> name changes in it not yet followed by an fsync of it.
    dirty_dirs: dict[Key, list[Event]] = field(default_factory=dict)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real = {name: getattr(os, name) for name in _WATCHED}
        for name, wrap in _WATCHED.items():
            monkeypatch.setattr(os, name, wrap(self, real[name]))

    def mine(self, path: str) -> bool:
        return os.path.abspath(path).startswith(self.root)

    def since(self, mark: int) -> list[Event]:
        return self.events[mark:]

    def assert_durable(self, what: object) -> None:
        assert not self.dirty_files, f"{what}: returned with unsynced writes to {self.dirty_files}"
        pending = [e for changes in self.dirty_dirs.values() for e in changes]
        allowed = [e for e in pending if e.op == "unlink" and e.path.endswith(".snap")]
        assert pending == allowed, f"{what}: returned with unsynced directory changes {pending}"


def _key_of_fd(fd: int) -> tuple[Key, bool, str]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino), stat.S_ISDIR(st.st_mode), os.readlink(f"/proc/self/fd/{fd}")


def _dir_key(path: str) -> Key:
    st = os.stat(os.path.dirname(os.path.abspath(path)))
    return st.st_dev, st.st_ino


def _name_change(w: OsWatcher, event: Event) -> None:
    w.events.append(event)
    w.dirty_dirs.setdefault(_dir_key(event.dst or event.path), []).append(event)


def _on_write(w: OsWatcher, real: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(fd: int, *args: Any) -> Any:
        result = real(fd, *args)
        key, _, path = _key_of_fd(fd)
        if w.mine(path):
            w.events.append(Event("write", path))
            w.dirty_files[key] = path
        return result

    return wrapper


def _on_sync(w: OsWatcher, real: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(fd: int) -> Any:
        result = real(fd)
        key, is_dir, path = _key_of_fd(fd)
        if w.mine(path):
            w.events.append(Event("sync", path))
            w.dirty_files.pop(key, None)
            if is_dir:
                w.dirty_dirs.pop(key, None)
        return result

    return wrapper


def _on_open(w: OsWatcher, real: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(path: Any, flags: int, *args: Any, **kw: Any) -> Any:
        new = bool(flags & os.O_CREAT) and not os.path.exists(path)
        fd = real(path, flags, *args, **kw)
        if new and w.mine(os.fspath(path)):
            _name_change(w, Event("create", os.path.abspath(path)))
        return fd

    return wrapper


def _on_rename(w: OsWatcher, real: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(src: Any, dst: Any, *args: Any, **kw: Any) -> Any:
        real(src, dst, *args, **kw)
        if w.mine(os.fspath(dst)):
            _name_change(w, Event("rename", os.path.abspath(src), os.path.abspath(dst)))

    return wrapper


def _on_path(op: str) -> Callable[[OsWatcher, Callable[..., Any]], Callable[..., Any]]:
    def wrap(w: OsWatcher, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any, **kw: Any) -> Any:
            real(path, *args, **kw)
            if w.mine(os.fspath(path)):
                _name_change(w, Event(op, os.path.abspath(path)))

        return wrapper

    return wrap


_WATCHED: dict[str, Callable[[OsWatcher, Callable[..., Any]], Callable[..., Any]]] = {
    "pwrite": _on_write,
    "ftruncate": _on_write,
    "posix_fallocate": _on_write,
    "fdatasync": _on_sync,
    "fsync": _on_sync,
    "open": _on_open,
    "rename": _on_rename,
    "unlink": _on_path("unlink"),
    "mkdir": _on_path("mkdir"),
}


def _first(events: list[Event], match: Callable[[Event], bool], what: str, start: int = 0) -> int:
    for i in range(start, len(events)):
        if match(events[i]):
            return i
    raise AssertionError(f"no {what} in {events[start:]}")


def _check_save(events: list[Event]) -> None:
    write = _first(events, lambda e: e.op == "write" and e.path.endswith(".wal"), "WAL write")
    segment = events[write].path
    _first(events, lambda e: e.op == "sync" and e.path == segment, "sync of the segment", write)


def _check_snapshot(events: list[Event], directory: str, *, then_record: bool = True) -> None:
    """A snapshot file written, synced, renamed, its directory synced; then (unless a sink only
    wrote it) the WAL record naming it."""
    written = _first(events, lambda e: e.op == "write" and e.path.endswith(".snap.tmp"), "write")
    tmp = events[written].path
    synced = _first(events, lambda e: e.op == "sync" and e.path == tmp, "snapshot sync", written)
    renamed = _first(events, lambda e: e.op == "rename" and e.path == tmp, "rename", synced)
    in_dir = _first(events, lambda e: e.op == "sync" and e.path == directory, "dir sync", renamed)
    # (Unsynced saves pending before it may be written first, as their own record.)
    early = [e for e in events[written:in_dir] if e.path.endswith(".wal")]
    assert not early, f"the WAL was written before the snapshot file was durable: {events}"
    if then_record:
        _check_save(events[in_dir:])
    else:
        assert not [e for e in events if e.path.endswith(".wal")], "a sink wrote to the WAL"


def _check_sink_save(events: list[Event]) -> None:
    """Saving a sink's snapshot writes its record, no snapshot file: that is durable already."""
    assert not [e for e in events if ".snap" in e.path and e.op == "write"], events
    _check_save(events)


def _check_rollover(events: list[Event], directory: str) -> None:
    """A new segment: the previous one truncated and synced, the new one synced under its
    temporary name, renamed, the directory synced; all before the record is written to it."""
    for created in (i for i, e in enumerate(events) if e.op == "create" and ".wal" in e.path):
        tmp = events[created].path
        prev = [e for e in events[:created] if e.op == "write" and e.path.endswith(".wal")]
        if prev:  # a rollover: the previous segment was truncated and synced first
            old = prev[-1].path
            last_write = max(i for i, e in enumerate(events[:created]) if e.path == old)
            assert any(e.op == "sync" and e.path == old for e in events[last_write:created])
        synced = _first(events, lambda e, t=tmp: e.op == "sync" and e.path == t, "sync", created)
        renamed = _first(
            events, lambda e, t=tmp: e.op == "rename" and e.path == t, "rename", synced
        )
        dst = events[renamed].dst
        _first(events, lambda e: e.op == "sync" and e.path == directory, "dir sync", renamed)
        later = [i for i, e in enumerate(events) if e.path == dst and e.op == "write"]
        dir_sync = _first(events, lambda e: e.op == "sync" and e.path == directory, "", renamed)
        assert all(i > dir_sync for i in later), "written to before its name was durable"


def _check_compaction(events: list[Event], directory: str) -> None:
    unlinks = [i for i, e in enumerate(events) if e.op == "unlink" and e.path.endswith(".wal")]
    for i, nxt in zip(unlinks, [*unlinks[1:], len(events)], strict=True):
        assert any(e.op == "sync" and e.path == directory for e in events[i:nxt]), (
            f"segment {events[i].path} deleted without a directory sync before the next"
        )


@pytest.mark.parametrize("thread_io", ["auto", "always"])
async def test_every_durable_operation_syncs_through_the_os(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_io: ThreadIO
) -> None:
    directory = str(tmp_path / "node" / "raft")
    watch = OsWatcher(str(tmp_path))
    watch.install(monkeypatch)
    storage = await FileStorage.open(directory, segment_bytes=4096, thread_io=thread_io)
    watch.assert_durable("open")  # the new directories, LOCK, the first segment
    _check_rollover(watch.events, directory)
    seen = {"rollover": 0, "compaction": 0, "snapshot": 0, "sink": 0, "sink save": 0, "save": 0}
    for op in workload(21, 160):
        mark = len(watch.events)
        await apply(storage, op)
        events = watch.since(mark)
        if isinstance(op, Save) and not op.sync and op.snapshot is None:
            continue  # promises nothing (merged into the next synced save)
        if isinstance(op, SinkBegin | SinkWrite | SinkAbort):
            continue  # promise nothing: only a finished sink's file is durable
        watch.assert_durable(op)
        if any(e.op == "create" and ".wal" in e.path for e in events):
            _check_rollover(events, directory)
            seen["rollover"] += 1
        if isinstance(op, SinkFinish):
            _check_snapshot(events, directory, then_record=False)
            seen["sink"] += 1
        elif isinstance(op, SaveSnapshot | Save) and op.via_sink:
            _check_sink_save(events)
            seen["sink save"] += 1
        elif isinstance(op, SaveSnapshot) or (isinstance(op, Save) and op.snapshot is not None):
            _check_snapshot(events, directory)
            seen["snapshot"] += 1
        elif isinstance(op, Save) and (op.entries or op.hard_state is not None):
            _check_save(events)
            seen["save"] += 1
        elif isinstance(op, Compact) and events:
            _check_compaction(events, directory)
            seen["compaction"] += 1
    await end_with_local_snapshot(storage)
    await storage.aclose()
    watch.assert_durable("close")
    assert all(seen.values()), seen  # the workload exercised every kind of durable operation


async def test_recovery_repairs_sync_before_the_storage_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A torn tail set aside and truncated, a missing snapshot replaced by the newest file: the
    repair is durable when ``open`` returns."""
    directory = tmp_path / "raft"
    async with await FileStorage.open(directory, segment_bytes=1 << 16) as storage:
        for op in workload(22, 80):
            await apply(storage, op)
        await end_with_local_snapshot(storage)
    segment = max(directory.glob("*.wal"))
    data = segment.read_bytes().rstrip(b"\0")
    segment.write_bytes(data[:-3])  # the last record, naming the newest snapshot, torn
    watch = OsWatcher(str(tmp_path))
    watch.install(monkeypatch)
    storage = await FileStorage.open(directory, segment_bytes=1 << 16)
    watch.assert_durable("a repairing open")
    broken = [e for e in watch.events if e.op == "rename" and e.dst.endswith(".broken")]
    assert broken, "the damaged bytes were not set aside"
    assert any(e.op == "write" and e.path == str(segment) for e in watch.events)
    await storage.aclose()
