"""``Snapshotter``: the state machine's snapshots, taken every ``snapshot_count`` entries and
restored from the leader or from disk.

Serializing a large state takes long (about 170 ms for 100 000 keys), so the raft loop only
captures it (``maybe_start``: the key-value store copies its index, a few milliseconds); a task
turns it into bytes a chunk at a time while the loop goes on, and hands them back through the
inbox (``SnapshotBuilt``) to be saved and the log compacted (``save``). A state machine without
``snapshot_chunks()`` is serialized by its ``snapshot()`` at capture time.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator

import trio

from ._envelope import MemberTables, decode_snapshot, encode_snapshot
from ._inbox import InboxItem, SnapshotBuilt
from ._membership import Membership
from ._node_config import NodeConfig, NodeStatistics
from ._statemachine import StateMachine
from .core import ConfState, MemoryLogStore
from .storage import Storage

__all__ = ["Snapshotter"]

log = logging.getLogger("raftkv.node")


class Snapshotter:
    def __init__(
        self,
        config: NodeConfig,
        *,
        storage: Storage,
        log_store: MemoryLogStore,
        state_machine: StateMachine,
        membership: Membership,
        statistics: NodeStatistics,
    ) -> None:
        self._config = config
        self._storage = storage
        self._log_store = log_store
        self._sm = state_machine
        self._membership = membership
        self._stats = statistics
        self.index = log_store.snapshot().metadata.index  # of the newest snapshot here
        self._building = False  # one snapshot at a time
        self._built: SnapshotBuilt | None = None  # built, not saved yet

    def restore(self, data: bytes, index: int) -> None:
        """Replace the state machine and the member tables with a snapshot's."""
        tables, app = decode_snapshot(data)
        self._sm.restore(app)
        self._membership.restore(tables)
        self.index = index

    def maybe_start(
        self,
        applied: int,
        conf_state: ConfState,
        tasks: trio.Nursery,
        submit: Callable[[InboxItem], Awaitable[None]],
    ) -> None:
        """Every ``snapshot_count`` applied entries, start building a snapshot of now."""
        if self._building or applied - self.index < self._config.snapshot_count:
            return
        self._building = True
        tables = self._membership.tables()
        chunks = self._state_chunks()
        at = SnapshotBuilt(applied, conf_state, b"")
        tasks.start_soon(self._build, at, tables, chunks, submit)

    def _state_chunks(self) -> Iterator[bytes]:
        """The state machine's state as of now, as chunks to serialize later."""
        chunks: Callable[[], Iterator[bytes]] | None = getattr(self._sm, "snapshot_chunks", None)
        if chunks is None:  # a plain StateMachine: its snapshot() is taken right here
            return iter((self._sm.snapshot(),))
        return chunks()  # a consistent view, serialized as the chunks are consumed

    async def _build(
        self,
        at: SnapshotBuilt,
        tables: MemberTables,
        chunks: Iterator[bytes],
        submit: Callable[[InboxItem], Awaitable[None]],
    ) -> None:
        """Serialize the captured state ``at`` (its index and configuration), a chunk at a
        time, and hand the bytes back to the raft loop."""
        parts = []
        for chunk in chunks:
            parts.append(chunk)
            await trio.lowlevel.checkpoint()
        data = encode_snapshot(tables, parts)
        del parts
        await submit(SnapshotBuilt(at.index, at.conf_state, data))

    def built(self, built: SnapshotBuilt) -> None:
        """The build task's result arrived in the raft loop's inbox."""
        self._built = built

    async def save_built(self) -> None:
        """Save the snapshot just built, if any, and compact the log behind it (raft loop)."""
        built, self._built = self._built, None
        if built is None:
            return
        self._building = False
        if built.index <= self._log_store.snapshot().metadata.index:
            return  # a newer snapshot (sent by the leader) was restored meanwhile
        snapshot = self._log_store.create_snapshot(built.index, built.conf_state, built.data)
        await self._storage.save_snapshot(snapshot)
        self.index = built.index
        self._stats.snapshots_taken += 1
        keep_from = built.index - self._config.catch_up_entries
        if keep_from > self._log_store.first_index():
            self._log_store.compact(keep_from)
            await self._storage.compact(keep_from)
        log.info("node %d took a snapshot at %d", self._config.id, built.index)
