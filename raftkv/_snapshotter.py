"""``Snapshotter``: the state machine's snapshots, taken when the log has grown enough beside
the state, and restored from the leader or from disk.

When (``due``): a snapshot costs about the state's size in work and disk writes, and the log
it replaces costs memory, disk and restart time. So one is taken once the log since the last
snapshot weighs ``snapshot_log_ratio`` times that snapshot's size (each logged byte then costs
at most ``1 / ratio`` bytes of snapshot), but not before ``snapshot_count`` entries (small states
would otherwise be snapshotted all the time); and whatever the count or the state, once the log
weighs ``snapshot_max_log_bytes`` (memory and restart time stay bounded). An entry weighs its
data plus ``ENTRY_COST``.

How: serializing a large state takes seconds, so the raft loop only captures it
(``maybe_start``: the key-value store opens a view of its live history, no copy); a task streams
it into the storage's snapshot sink a chunk at a time while the loop goes on, the sink writing
and syncing the file a little at a time beside the WAL; the finished snapshot comes back through
the inbox (``SnapshotBuilt``) and the loop puts it in force: one WAL record, then the log is
compacted (``save_built``). A state machine without ``snapshot_chunks()`` is serialized by its
``snapshot()`` at capture time.

Restoring reads the snapshot as a stream (its data stays in its file); a snapshot the
``SnapshotInstaller`` readied beside the loop is installed at once instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator

import trio

from ._envelope import MemberTables, encode_snapshot_head, read_snapshot_head
from ._gc import GcTuning
from ._inbox import InboxItem, SnapshotBuilt
from ._installer import SnapshotInstaller
from ._logstore import RuntimeLogStore
from ._membership import Membership
from ._node_config import NodeConfig, NodeStatistics
from ._snapdata import open_snapshot_data, snapshot_data_size
from ._statemachine import StateMachine, restores_by
from .core import ConfState, Snapshot, SnapshotMetadata
from .storage import Storage

__all__ = ["Snapshotter"]

log = logging.getLogger("raftkv.node")


class Snapshotter:
    def __init__(
        self,
        config: NodeConfig,
        *,
        storage: Storage,
        log_store: RuntimeLogStore,
        state_machine: StateMachine,
        membership: Membership,
        installer: SnapshotInstaller,
        gc_tuning: GcTuning,
        statistics: NodeStatistics,
    ) -> None:
        self._config = config
        self._storage = storage
        self._log_store = log_store
        self._sm = state_machine
        self._membership = membership
        self._installer = installer
        self._gc = gc_tuning
        self._stats = statistics
        snapshot = log_store.snapshot()
        self.index = snapshot.metadata.index  # of the newest snapshot here
        self.size = 0 if snapshot.is_empty else snapshot_data_size(snapshot)
        self._log_mark = 0  # log_store.appended_bytes when the newest snapshot was captured
        self._building = False  # one snapshot at a time
        self._built: SnapshotBuilt | None = None  # built, not saved yet

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the state machine and the member tables with ``snapshot``'s."""
        started = time.perf_counter()
        prepared = self._installer.take(snapshot.metadata)
        if prepared is not None:
            prepared.install()
            tables = prepared.tables
        else:
            with self._gc.paused():
                tables = self._restore_from(snapshot)
        self._membership.restore(tables)
        self.index = snapshot.metadata.index
        self.size = snapshot_data_size(snapshot)
        self._log_mark = self._log_store.appended_bytes
        self._stats.snapshot_restore_seconds = time.perf_counter() - started
        self._gc.state_replaced(self.size)

    def _restore_from(self, snapshot: Snapshot) -> MemberTables:
        with open_snapshot_data(snapshot) as stream:
            tables, app = read_snapshot_head(stream)
            if restores_by(self._sm, "restore_from"):
                self._sm.restore_from(app)  # type: ignore[attr-defined]
            else:
                self._sm.restore(app.read())
        return tables

    def due(self, applied: int) -> bool:
        """Whether the log since the newest snapshot weighs enough for another (see above)."""
        config = self._config
        weight = self._log_store.appended_bytes - self._log_mark
        if weight >= config.snapshot_max_log_bytes:
            return True
        return (
            applied - self.index >= config.snapshot_count
            and weight >= config.snapshot_log_ratio * self.size
        )

    def maybe_start(
        self,
        applied: int,
        conf_state: ConfState,
        tasks: trio.Nursery,
        submit: Callable[[InboxItem], Awaitable[None]],
    ) -> None:
        """Start building a snapshot of now, if one is due and none is being built."""
        if self._building or applied <= self.index or not self.due(applied):
            return
        self._building = True
        self._log_mark = self._log_store.appended_bytes
        meta = SnapshotMetadata(applied, self._log_store.term(applied), conf_state)
        tables = self._membership.tables()
        tasks.start_soon(self._build, meta, tables, self._state_chunks(), submit)

    def _state_chunks(self) -> Iterator[bytes]:
        """The state machine's state as of now, as chunks to serialize later."""
        chunks: Callable[[], Iterator[bytes]] | None = getattr(self._sm, "snapshot_chunks", None)
        if chunks is None:  # a plain StateMachine: its snapshot() is taken right here
            return iter((self._sm.snapshot(),))
        return chunks()  # a consistent view, serialized as the chunks are consumed

    async def _build(
        self,
        meta: SnapshotMetadata,
        tables: MemberTables,
        chunks: Iterator[bytes],
        submit: Callable[[InboxItem], Awaitable[None]],
    ) -> None:
        """Stream the captured state into a snapshot file, a chunk at a time, and hand the
        snapshot back to the raft loop."""
        started = time.perf_counter()
        sink = self._storage.begin_snapshot(meta)
        try:
            await sink.write(encode_snapshot_head(tables))
            for chunk in chunks:
                await sink.write(chunk)
                await trio.lowlevel.checkpoint()
            snapshot = await sink.finish()
        except BaseException:
            sink.abort()
            raise
        finally:
            close: Callable[[], None] | None = getattr(chunks, "close", None)
            if close is not None:
                close()  # the store's view of its history: compaction may proceed
        self._stats.snapshot_build_seconds = time.perf_counter() - started
        await submit(SnapshotBuilt(meta, snapshot, sink.abort))

    def built(self, built: SnapshotBuilt) -> None:
        """The build task's result arrived in the raft loop's inbox."""
        self._built = built

    async def save_built(self) -> None:
        """Put the snapshot just built in force, if any, and compact the log (raft loop)."""
        built, self._built = self._built, None
        if built is None:
            return
        self._building = False
        snapshot = built.snapshot
        if snapshot is None or built.metadata.index <= self._log_store.snapshot().metadata.index:
            built.discard()  # a newer snapshot (sent by the leader) was restored meanwhile
            return
        self._log_store.keep_snapshot(snapshot)
        await self._storage.save_snapshot(snapshot)
        self.index = built.metadata.index
        self.size = snapshot_data_size(snapshot)
        self._gc.state_grew(self.size)
        self._stats.snapshots_taken += 1
        self._stats.snapshot_bytes = self.size
        keep_from = self.index - self._config.catch_up_entries
        if keep_from > self._log_store.first_index():
            self._log_store.compact(keep_from)
            await self._storage.compact(keep_from)
        log.info(
            "node %d took a snapshot at %d (%d bytes in %.2f s)",
            self._config.id,
            self.index,
            self.size,
            self._stats.snapshot_build_seconds,
        )
