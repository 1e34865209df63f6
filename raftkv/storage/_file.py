"""``FileStorage``: the ``Storage`` protocol on a directory of WAL segments and snapshot files.

Open it Trio-style, or with the classmethod and ``aclose``::

    async with open_file_storage("raftkv-1") as storage:
        state = await storage.load()
        ...
        await storage.save(hard_state=hs, entries=entries, snapshot=None, sync=True)

    storage = await FileStorage.open("raftkv-1", segment_bytes=64 << 20)

The directory holds ``LOCK`` (flock'd while open), WAL segments ``<seq>-<index>.wal`` (``_wal``,
``_records``), the snapshot file the WAL names ``snap-<term>-<index>.snap`` (``_snapfile``), and
``*.broken`` files: damaged tail bytes recovery set aside, kept for a human to look at.

Durability: ``save(sync=True)`` is one record, one ``pwrite`` and one ``fdatasync`` (group
commit: the whole batch, plus any earlier ``sync=False`` saves merged into it, pays one sync).
``save(sync=False)`` is held in memory until the next synced save or ``aclose``: Raft only asks
for no sync when nothing but the commit index changed, and a lost commit index is relearned.
Any ``OSError`` while writing raises ``StorageFailed`` naming the file and what to do
(``_fserrors``); from then on every call refuses. A segment deleted under the storage (its
directory removed) fails the next synced save. A WAL whose lost tail named the newest snapshot
falls back to that file (``_snapfallback``).

Threads (measured, see docs/storage.md): with ``thread_io="auto"`` opening (recovery), snapshot
files, compaction and large batches run in a worker thread; small batches run on the event loop
while syncs stay fast, because a thread hop costs about as much as an fdatasync on a fast disk.
If syncs turn slow (moving average above 1 ms), or while a snapshot file is being written beside
(its write-back delays them), small batches move to the thread too.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Literal, TypeVar

import trio

from .._codec import CODEC_VERSION
from .._errors import StorageError, StorageFailed, StorageMismatch
from .._snapdata import StoredSnapshot
from ..core import Entry, HardState, Snapshot, SnapshotMetadata
from ._base import PersistedState
from ._entries import check_batch, splice
from ._fs import FileSystem, OsFileSystem, remove_if_exists
from ._fserrors import NamingFileSystem, describe_os_error
from ._records import (
    RecordType,
    SegmentHeader,
    SnapshotRef,
    encode_batch,
    encode_snapshot_record,
)
from ._recovery import Damage, WalState, scan_wal
from ._snapfallback import SnapshotFallback, plan_snapshot_fallback
from ._snapfile import (
    SNAPSHOT_SUFFIX,
    SnapshotFileWriter,
    StoredIn,
    read_snapshot_file,
    write_snapshot_file,
)
from ._snapsink import DEFAULT_PACE_BYTES, FileSnapshotSink
from ._wal import WalWriter, create_segment, preallocate_if_room

__all__ = ["FileStorage", "FileStorageStatistics", "ThreadIO", "open_file_storage"]

logger = logging.getLogger("raftkv.storage")

ThreadIO = Literal["auto", "always", "never"]
T = TypeVar("T")

DEFAULT_SEGMENT_BYTES = 64 << 20
_INLINE_MAX_BYTES = 256 << 10  # larger batches are encoded and written in a worker thread
_SLOW_SYNC = 1e-3  # seconds; above this moving average, syncs move to a worker thread
_ENTRY_OVERHEAD = 40  # record bytes per entry beyond its data, generously (CBOR framing)


class _Exclusive:
    """Refuses a second task while one is inside (the contract: one caller at a time)."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError("another task is already using this storage")
        self._held = True

    def __exit__(self, *exc: object) -> None:
        self._held = False


@dataclass(frozen=True, slots=True)
class FileStorageStatistics:
    segments: int  # WAL segment files on disk
    syncs: int  # fdatasync calls on WAL segments since open
    bytes_written: int  # WAL bytes written since open
    snapshot_index: int  # index of the snapshot the WAL names (0: none)
    pending_saves: int  # sync=False saves not yet written


def _state(
    fs: FileSystem, directory: str, wal: WalState, names: list[str], *, opening: bool
) -> tuple[PersistedState, SnapshotFallback | None]:
    """What ``load`` returns, after the cross-checks that need the snapshot file; when opening,
    with the snapshot fallback (``_snapfallback``) if the WAL's snapshot file is missing."""
    if not wal.segments and any(n.endswith(SNAPSHOT_SUFFIX) for n in names):
        raise StorageMismatch(f"{directory} holds snapshot files but no WAL segment")
    if opening and wal.snapshot is not None and wal.snapshot.name not in names:
        fallback = plan_snapshot_fallback(fs, directory, wal, names)
        return fallback.state(), fallback
    snapshot = None if wal.snapshot is None else read_snapshot_file(fs, directory, wal.snapshot)
    entries = wal.live_entries()
    hs = wal.hard_state or HardState()
    last = entries[-1].index if entries else wal.snapshot_index
    if hs.commit > last:
        raise StorageMismatch(
            f"{directory}: the hard state's commit index {hs.commit} is beyond the log's "
            f"last index {last}"
        )
    return PersistedState(hard_state=hs, snapshot=snapshot, entries=entries), None


def _set_aside(fs: FileSystem, directory: str, damage: Damage) -> str:
    """Keep the damaged bytes in ``<segment>.<offset>[.n].broken``; an earlier file there with
    other bytes (a repair that was itself cut short and damaged anew) is kept too."""
    base = f"{os.path.basename(damage.path)}.{damage.offset:x}"
    taken = set(fs.listdir(directory))
    for n in itertools.count():
        path = os.path.join(directory, f"{base}.{n}.broken" if n else f"{base}.broken")
        if os.path.basename(path) not in taken:
            break
        if fs.read_file(path) == damage.data:
            return path
    tmp = path + ".tmp"
    remove_if_exists(fs, tmp)
    fd = fs.create(tmp)
    try:
        fs.pwrite(fd, damage.data, 0)
        fs.fdatasync(fd)
    finally:
        fs.close(fd)
    fs.rename(tmp, path)
    fs.fsync_dir(directory)
    return path


def _record_fallback(writer: WalWriter, fallback: SnapshotFallback) -> None:
    """Make the snapshot fallback durable: one record, as a snapshot from a leader is saved."""
    kept = fallback.entries
    try:
        writer.append(
            RecordType.BATCH,
            encode_batch(fallback.ref, kept, fallback.hard_state),
            hard_state=fallback.hard_state,
            snapshot=fallback.ref,
            max_index=kept[-1].index if kept else 0,
            next_index=kept[0].index if kept else fallback.ref.index + 1,
        )
    except BaseException:
        writer.close()
        raise


class FileStorage:
    """Durable ``Storage`` in a directory. Create with ``open`` / ``open_file_storage``.

    One task at a time may call it (the runtime's raft task). ``load`` before any save returns
    what recovery found; later calls read the directory again.
    """

    def __init__(
        self,
        *,
        fs: FileSystem,
        directory: str,
        writer: WalWriter,
        recovered: PersistedState,
        lock: int,
        thread_io: ThreadIO,
        snapshot_pace_bytes: int = DEFAULT_PACE_BYTES,
    ) -> None:
        self._fs = fs
        self._dir = directory
        self._writer = writer
        self._recovered: PersistedState | None = recovered
        self._lock = lock
        self._thread_io = thread_io
        # Invariant: the log's last index counting pending saves (what the next batch follows).
        self._last_index = (
            recovered.entries[-1].index
            if recovered.entries
            else (recovered.snapshot.metadata.index if recovered.snapshot else 0)
        )
        self._pending: list[tuple[HardState | None, Sequence[Entry]]] = []
        self._failed: OSError | None = None
        self._closed = False
        self._sync_ewma = 0.0
        # Snapshot-file writes in a worker thread now: a WAL sync meanwhile waits behind their
        # write-back (a megabyte: tens of milliseconds), so saves go to the thread as well.
        self._writing_beside = 0
        self._exclusive = _Exclusive()
        self._snapshot_pace_bytes = snapshot_pace_bytes
        # Snapshot files are written by sinks beside the WAL; naming one is serialized.
        self._naming = threading.Lock()

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        preallocate: bool = True,
        thread_io: ThreadIO = "auto",
        snapshot_pace_bytes: int = DEFAULT_PACE_BYTES,
        fs: FileSystem | None = None,
    ) -> FileStorage:
        """Open (creating if needed) and recover the data directory.

        Raises ``CorruptLog``, ``CorruptSnapshot`` or ``StorageMismatch`` (nothing is changed
        on disk then), ``StorageError`` if another process holds the directory, and
        ``StorageFailed`` on an I/O error.
        """
        if segment_bytes < 4096:
            raise ValueError("segment_bytes must be at least 4096")
        if snapshot_pace_bytes < 1:
            raise ValueError("snapshot_pace_bytes must be positive")
        named = NamingFileSystem(fs or OsFileSystem())
        path = os.fspath(directory)
        opener = partial(
            cls._open_sync,
            named,
            path,
            segment_bytes=segment_bytes,
            preallocate=preallocate,
            thread_io=thread_io,
            snapshot_pace_bytes=snapshot_pace_bytes,
        )
        try:
            if thread_io == "never":
                await trio.lowlevel.checkpoint()
                return opener()
            return await trio.to_thread.run_sync(opener)
        except BlockingIOError:
            raise StorageError(f"{path} is in use by another process") from None
        except OSError as exc:
            raise StorageFailed(f"cannot open {path}: {describe_os_error(exc)}") from exc

    @classmethod
    def _open_sync(
        cls,
        fs: FileSystem,
        directory: str,
        *,
        segment_bytes: int,
        preallocate: bool,
        thread_io: ThreadIO,
        snapshot_pace_bytes: int,
    ) -> FileStorage:
        fs.makedirs(directory)
        lock = fs.lock(directory)
        try:
            names = sorted(fs.listdir(directory))
            wal = scan_wal(fs, directory, names)
            state, fallback = _state(fs, directory, wal, names, opening=True)
            # Every check passed: from here on the directory may change.
            cls._clean(fs, directory, names, wal.snapshot if fallback is None else fallback.ref)
            writer = cls._make_writer(fs, directory, wal, segment_bytes, preallocate)
            if fallback is not None:
                _record_fallback(writer, fallback)
                logger.warning(
                    "%s; the repair is recorded in the WAL", fallback.describe(directory)
                )
            return cls(
                fs=fs,
                directory=directory,
                writer=writer,
                recovered=state,
                lock=lock,
                thread_io=thread_io,
                snapshot_pace_bytes=snapshot_pace_bytes,
            )
        except BaseException:
            fs.unlock(lock)
            raise

    @staticmethod
    def _make_writer(
        fs: FileSystem, directory: str, wal: WalState, segment_bytes: int, preallocate: bool
    ) -> WalWriter:
        prealloc = segment_bytes if preallocate else 0
        if not wal.segments:
            header = SegmentHeader(CODEC_VERSION, 0, None, None)
            seg, fd, offset = create_segment(
                fs, directory, seq=0, first_index=1, header=header, preallocate=prealloc
            )
            segments, records_start = [seg], offset
        else:
            segments, offset, records_start = wal.segments, wal.tail_offset, wal.records_start
            fd = fs.open(os.path.join(directory, segments[-1].name))
            try:
                if wal.damage is not None:
                    broken = _set_aside(fs, directory, wal.damage)
                    fs.ftruncate(fd, wal.damage.offset)
                    logger.warning(
                        "%s: torn tail at offset %d (%s) truncated; %d damaged bytes kept in %s",
                        wal.damage.path,
                        wal.damage.offset,
                        wal.damage.reason,
                        len(wal.damage.data),
                        broken,
                    )
                size = fs.size(fd)
                grow = prealloc > 0 and size < prealloc
                if grow:
                    path = os.path.join(directory, segments[-1].name)
                    preallocate_if_room(fs, fd, prealloc, path=path, size=size)
                if grow or wal.damage is not None:
                    fs.fdatasync(fd)
            except BaseException:
                fs.close(fd)
                raise
        return WalWriter(
            fs,
            directory,
            segments,
            fd=fd,
            offset=offset,
            records_start=records_start,
            hard_state=wal.hard_state,
            snapshot=wal.snapshot,
            segment_bytes=segment_bytes,
            preallocate=preallocate,
        )

    @staticmethod
    def _clean(fs: FileSystem, directory: str, names: list[str], keep: SnapshotRef | None) -> None:
        """Remove half-written files and snapshot files the WAL no longer names."""
        doomed = [
            n
            for n in names
            if n.endswith(".tmp")
            or (n.endswith(SNAPSHOT_SUFFIX) and (keep is None or n != keep.name))
        ]
        for name in doomed:
            remove_if_exists(fs, os.path.join(directory, name))
        if doomed:
            fs.fsync_dir(directory)

    # -- Storage --------------------------------------------------------------------------------

    async def load(self) -> PersistedState:
        with self._exclusive:
            self._check()
            if self._recovered is not None:
                state, self._recovered = self._recovered, None
                await trio.lowlevel.checkpoint()
                return state
            return await self._run(self._reload, heavy=True)

    def _reload(self) -> PersistedState:
        names = sorted(self._fs.listdir(self._dir))
        wal = scan_wal(self._fs, self._dir, names)
        if wal.damage is not None:
            raise StorageMismatch(f"{wal.damage.path} changed under an open storage")
        return _state(self._fs, self._dir, wal, names, opening=False)[0]

    async def save(
        self,
        *,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None,
        sync: bool = True,
    ) -> None:
        with self._exclusive:
            self._check()
            self._recovered = None  # stale from now on; load() reads the directory again
            if snapshot is not None and snapshot.is_empty:
                snapshot = None
            if snapshot is not None:
                self._check_newer(snapshot)
                check_batch(entries, snapshot.metadata.index)
            else:
                check_batch(entries, self._last_index)
            if not sync and snapshot is None:
                if entries or hard_state is not None:
                    self._pending.append((hard_state, tuple(entries)))
                    self._advance(entries, None)
                return
            # Large batches, segment rollovers (about 1 ms) and snapshots go to a worker thread
            # in "auto": putting a snapshot in force removes the previous file (a hundred
            # megabytes: 26 ms of unlink), and writes its own first unless a sink did.
            size = sum(len(e.data) for e in entries) + _ENTRY_OVERHEAD * (len(entries) + 1)
            heavy = snapshot is not None or size > min(_INLINE_MAX_BYTES, self._writer.room())
            await self._run(partial(self._write_batch, hard_state, entries, snapshot), heavy=heavy)

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Put a snapshot taken here in force. A snapshot from ``begin_snapshot`` costs only
        its WAL record here (one small write and sync); any other is written first."""
        with self._exclusive:
            self._check()
            self._recovered = None
            self._check_newer(snapshot)
            # In a worker thread: the previous snapshot's file is removed too (see ``save``).
            await self._run(partial(self._write_snapshot, snapshot), heavy=True)

    def begin_snapshot(self, metadata: SnapshotMetadata) -> FileSnapshotSink:
        """A sink that writes the snapshot file for ``metadata`` from any task, beside the
        raft loop's saves (``_snapsink``); its ``finish()`` returns the snapshot to hand to
        ``save_snapshot`` (taken here) or ``save`` (received from the leader)."""
        self._check()
        return FileSnapshotSink(
            metadata,
            open_writer=self._open_snapshot_writer,
            run=self._run_beside,
            discard=self._discard_unsaved,
            pace_bytes=self._snapshot_pace_bytes,
        )

    def _discard_unsaved(self, stored: StoredIn) -> None:
        """Remove a finished sink's file that will not be saved (unless it is in force)."""
        if stored.directory != self._dir or self._closed or self._failed is not None:
            return  # a closed or failed storage touches nothing; the next open cleans up
        path = os.path.join(self._dir, stored.ref.name)
        with self._naming:
            if self._writer.snapshot == stored.ref:
                return
            try:
                remove_if_exists(self._fs, path)
            except OSError as exc:  # garbage left behind is harmless: the next open removes it
                logger.warning("%s: cannot remove an unused snapshot file: %s", path, exc)

    def _open_snapshot_writer(self, metadata: SnapshotMetadata) -> SnapshotFileWriter:
        return SnapshotFileWriter(self._fs, self._dir, metadata, self._naming)

    async def _run_beside(self, fn: Callable[[], T]) -> T:
        """``fn`` for a snapshot sink: in a worker thread unless ``thread_io="never"``."""
        self._check()
        if self._thread_io == "never":
            await trio.lowlevel.checkpoint()
            return self._guarded(fn)
        self._writing_beside += 1
        try:
            return await trio.to_thread.run_sync(self._guarded, fn)
        finally:
            self._writing_beside -= 1

    def _written_ref(self, snapshot: Snapshot) -> SnapshotRef | None:
        """The reference to ``snapshot``'s file if a sink of this storage wrote it already."""
        if not isinstance(snapshot, StoredSnapshot):
            return None
        origin = snapshot.file.origin
        if not isinstance(origin, StoredIn) or origin.directory != self._dir:
            return None
        return origin.ref if origin.ref.metadata == snapshot.metadata else None

    def _snapshot_file(self, snapshot: Snapshot) -> SnapshotRef:
        """The reference the WAL records for ``snapshot``, its file written first if need be."""
        ref = self._written_ref(snapshot)
        if ref is not None:
            return ref
        return write_snapshot_file(self._fs, self._dir, snapshot, self._naming)

    async def compact(self, index: int) -> None:
        """Delete WAL segments holding only entries below ``index`` that the snapshot covers.

        ``index`` is the first entry to keep (the runtime keeps a catch-up tail); it is capped
        at the snapshot: nothing the snapshot does not cover is released.
        """
        with self._exclusive:
            self._check()
            ref = self._writer.snapshot
            bound = min(index, 0 if ref is None else ref.index + 1)
            segments = self._writer.segments
            if len(segments) < 2 or segments[0].max_index >= bound:
                await trio.lowlevel.checkpoint()
                return
            await self._run(partial(self._writer.release, bound), heavy=True)

    async def aclose(self) -> None:
        """Write what ``sync=False`` saves left pending, then close. Idempotent."""
        if self._closed:
            return
        with self._exclusive:
            self._closed = True
        try:
            if self._failed is None and self._pending:
                with trio.CancelScope(shield=True):
                    await self._run(self._flush)
        finally:
            try:
                self._writer.close()
            finally:
                self._fs.unlock(self._lock)

    async def __aenter__(self) -> FileStorage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def statistics(self) -> FileStorageStatistics:
        ref = self._writer.snapshot
        return FileStorageStatistics(
            segments=len(self._writer.segments),
            syncs=self._writer.syncs,
            bytes_written=self._writer.bytes_written,
            snapshot_index=0 if ref is None else ref.index,
            pending_saves=len(self._pending),
        )

    # -- internals ------------------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the storage is closed")
        if self._failed is not None:
            # The files in the directory by their names alone: the line stays short enough
            # for a log's last line (a snapshot file's name is long).
            failed = describe_os_error(self._failed).replace(f"{self._dir}{os.sep}", "")
            failed = failed.removeprefix(f"{self._dir}: ")  # the directory itself failed
            raise StorageFailed(
                f"{self._dir}: an earlier write failed ({failed}); refusing further calls"
            )

    def _check_newer(self, snapshot: Snapshot) -> None:
        ref = self._writer.snapshot
        if ref is not None and snapshot.metadata.index <= ref.index:
            raise ValueError(
                f"snapshot at {snapshot.metadata.index} is not newer than the saved one at "
                f"{ref.index}"
            )

    def _advance(self, entries: Sequence[Entry], snapshot: Snapshot | None) -> None:
        if snapshot is not None:
            self._last_index = snapshot.metadata.index
        if entries:
            self._last_index = entries[-1].index

    async def _run(self, fn: Callable[[], T], *, heavy: bool = False) -> T:
        mode = self._thread_io
        slow = heavy or self._writing_beside or self._sync_ewma > _SLOW_SYNC
        if mode == "always" or (mode == "auto" and slow):
            return await trio.to_thread.run_sync(self._guarded, fn)
        # Inline work does not yield first: the caller (the raft loop) has nothing better to
        # run meanwhile, and a scheduling pass here sits on every write's critical path.
        return self._guarded(fn)

    def _guarded(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except OSError as exc:
            self._failed = exc
            where = "" if exc.filename else f"{self._dir}: "  # a named file says where
            raise StorageFailed(
                f"{where}{describe_os_error(exc)}. Nothing more is written or acknowledged: "
                f"the storage refuses further calls"
            ) from exc

    # The functions below run inline or in a worker thread, never both at once.

    def _merge_pending(
        self, hard_state: HardState | None, entries: Sequence[Entry], reset: bool
    ) -> tuple[HardState | None, Sequence[Entry]]:
        """This batch with the pending ``sync=False`` saves folded in: one record, one write."""
        if not self._pending:
            return hard_state, entries
        hs: HardState | None = None
        merged: list[Entry] = []
        for pending_hs, pending_entries in self._pending:
            if pending_hs is not None:
                hs = pending_hs
            if not reset:  # a snapshot from the leader replaces the log, pending entries too
                splice(merged, pending_entries)
        splice(merged, entries)
        return (hs if hard_state is None else hard_state), merged

    def _write_batch(
        self, hard_state: HardState | None, entries: Sequence[Entry], snapshot: Snapshot | None
    ) -> None:
        previous = self._writer.snapshot
        ref = None if snapshot is None else self._snapshot_file(snapshot)
        hs, merged = self._merge_pending(hard_state, entries, reset=ref is not None)
        if ref is not None or merged or hs is not None:
            started = time.perf_counter()
            self._writer.append(
                RecordType.BATCH,
                encode_batch(ref, merged, hs),
                hard_state=hs,
                snapshot=ref,
                max_index=merged[-1].index if merged else 0,
                next_index=merged[0].index if merged else self._last_index + 1,
            )
            # A moving average of the write+sync time picks where small batches run (``_run``).
            self._sync_ewma = 0.8 * self._sync_ewma + 0.2 * (time.perf_counter() - started)
        self._pending.clear()
        # Here, not after the await: a cancelled caller must not leave the index behind.
        self._advance(entries, snapshot)
        if ref is not None:
            self._drop_snapshot_file(previous, ref)

    def _flush(self) -> None:
        self._write_batch(None, (), None)

    def _write_snapshot(self, snapshot: Snapshot) -> None:
        if self._pending:
            self._flush()  # its own record: a write never holds more than one record
        previous = self._writer.snapshot
        ref = self._snapshot_file(snapshot)
        self._writer.append(
            RecordType.SNAPSHOT,
            encode_snapshot_record(ref),
            hard_state=None,
            snapshot=ref,
            max_index=0,
            next_index=self._last_index + 1,
        )
        self._drop_snapshot_file(previous, ref)

    def _drop_snapshot_file(self, previous: SnapshotRef | None, current: SnapshotRef) -> None:
        # The record naming ``current`` is durable, so ``previous`` is garbage. No directory
        # sync: if the unlink is lost in a crash, the next open deletes the file again.
        if previous is not None and previous.name != current.name:
            remove_if_exists(self._fs, os.path.join(self._dir, previous.name))


@asynccontextmanager
async def open_file_storage(
    directory: str | os.PathLike[str],
    *,
    segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    preallocate: bool = True,
    thread_io: ThreadIO = "auto",
    snapshot_pace_bytes: int = DEFAULT_PACE_BYTES,
    fs: FileSystem | None = None,
) -> AsyncIterator[FileStorage]:
    """``FileStorage.open`` as an async context manager that closes the storage on exit."""
    storage = await FileStorage.open(
        directory,
        segment_bytes=segment_bytes,
        preallocate=preallocate,
        thread_io=thread_io,
        snapshot_pace_bytes=snapshot_pace_bytes,
        fs=fs,
    )
    try:
        yield storage
    finally:
        await storage.aclose()
