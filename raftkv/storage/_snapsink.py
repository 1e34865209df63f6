"""``FileSnapshotSink``: a snapshot file written beside the raft loop, its write-back paced.

A snapshot of a large state is hundreds of megabytes. Written in one go and synced at the end,
it fills the disk's queue: every WAL ``fdatasync`` meanwhile waits behind megabytes of
write-back, and each write's latency with it. So the sink buffers what it is given and, every
``pace_bytes``, writes and syncs that much in a worker thread, then pauses for as long as the
write and sync took (``pause_ratio`` times that): the snapshot takes at most about half the
disk's time, and a WAL sync never waits behind more than ``pace_bytes`` of it.

``finish`` names the file (durable, but not in force: the caller then hands the snapshot to
``save_snapshot`` or ``save``, which append the WAL record naming it). ``abort`` removes it,
also once finished if it is not to be saved after all (a newer snapshot came first).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .._snapdata import StoredSnapshot
from ..core import SnapshotMetadata
from ._snapfile import SnapshotFileWriter, StoredIn

__all__ = ["DEFAULT_PACE_BYTES", "FileSnapshotSink"]

DEFAULT_PACE_BYTES = 1 << 20


class FileSnapshotSink:
    def __init__(
        self,
        metadata: SnapshotMetadata,
        *,
        open_writer: Callable[[SnapshotMetadata], SnapshotFileWriter],
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
        discard: Callable[[StoredIn], None],
        pace_bytes: int = DEFAULT_PACE_BYTES,
        pause_ratio: float = 1.0,
    ) -> None:
        self.metadata = metadata
        self._open_writer = open_writer
        self._run = run
        self._discard = discard
        self._finished: StoredIn | None = None
        self._pace_bytes = pace_bytes
        self._pause_ratio = pause_ratio
        self._writer: SnapshotFileWriter | None = None
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._done = False
        self.syncs = 0

    @property
    def written(self) -> int:
        """Bytes handed to ``write`` so far."""
        return (0 if self._writer is None else self._writer.written) + self._buffered

    async def write(self, data: bytes) -> None:
        if self._done:
            raise RuntimeError("the snapshot sink is finished")
        if not data:
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= self._pace_bytes:
            await self._flush(sync=True)

    async def finish(self) -> StoredSnapshot | None:
        """Write the rest, sync and name the file; None if a file of that snapshot exists
        already (nothing kept then)."""
        await self._flush(sync=False)
        writer = self._writer
        assert writer is not None
        self._done = True
        stored: StoredSnapshot | None = await self._call(writer.finish)
        self._writer = None
        if stored is not None:
            assert isinstance(stored.file.origin, StoredIn)
            self._finished = stored.file.origin
        return stored

    def abort(self) -> None:
        """Drop the file, finished or not, unless its snapshot was put in force (safe to call
        at any time, more than once)."""
        self._done = True
        self._buffer.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()
        finished, self._finished = self._finished, None
        if finished is not None:
            self._discard(finished)

    async def _flush(self, *, sync: bool) -> None:
        parts, self._buffer, self._buffered = self._buffer, [], 0
        data = b"".join(parts)
        del parts
        started = time.perf_counter()
        await self._call(lambda: self._write(data, sync))
        if sync:
            self.syncs += 1
            # Leave the disk to the WAL for a while: its syncs must not queue behind ours.
            await trio.sleep((time.perf_counter() - started) * self._pause_ratio)

    def _write(self, data: bytes, sync: bool) -> None:
        if self._writer is None:
            self._writer = self._open_writer(self.metadata)
        self._writer.write(data)
        if sync:
            self._writer.sync()

    async def _call(self, fn: Callable[[], Any]) -> Any:
        """``fn`` through the storage (inline or in a worker thread; an ``OSError`` becomes
        ``StorageFailed``); any failure or cancellation drops the file."""
        try:
            return await self._run(fn)
        except BaseException:
            self.abort()
            raise
