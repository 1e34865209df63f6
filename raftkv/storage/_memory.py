"""``MemoryStorage``: the ``Storage`` contract kept in memory, for tests and the simulator.

It behaves like ``FileStorage`` to the byte of the contract: a ``sync=True`` save (and
``save_snapshot``) is durable when it returns; a ``sync=False`` save is held until the next synced
save or ``aclose``. ``crash()`` is the storage a restart after a power cut finds: only what was
durable. ``inject_failure()`` makes a coming durable write raise ``StorageFailed``, after which
the storage refuses every call, as a failed fsync does to ``FileStorage``.

Example::

    storage = MemoryStorage()
    await storage.save(hard_state=HardState(1, 1, 0), entries=[Entry(1, 1)], snapshot=None)
    restarted = storage.crash()
    assert (await restarted.load()).entries == [Entry(1, 1)]
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from .._errors import StorageFailed
from ..core import Entry, HardState, Snapshot, SnapshotMetadata
from ._base import PersistedState
from ._entries import check_batch, splice

__all__ = ["MemorySnapshotSink", "MemoryStorage"]


class MemorySnapshotSink:
    """``SnapshotSink`` in memory: ``finish`` returns the snapshot of the bytes written."""

    def __init__(self, metadata: SnapshotMetadata) -> None:
        self.metadata = metadata
        self._parts: list[bytes] | None = []

    async def write(self, data: bytes) -> None:
        if self._parts is None:
            raise RuntimeError("the snapshot sink is finished")
        self._parts.append(data)  # no checkpoint: the writer takes one per chunk anyway

    async def finish(self) -> Snapshot | None:
        if self._parts is None:
            raise RuntimeError("the snapshot sink is finished")
        data = b"".join(self._parts)
        self._parts = None
        await trio.lowlevel.checkpoint()
        return Snapshot(self.metadata, data)

    def abort(self) -> None:
        self._parts = None


class MemoryStorage:
    """``Storage`` in memory. ``state`` is what it starts with, as if loaded from disk."""

    def __init__(self, state: PersistedState | None = None) -> None:
        state = state or PersistedState()
        self._hard_state = state.hard_state
        self._snapshot = state.snapshot
        # Invariant: contiguous; may still hold entries the snapshot covers (until compact).
        self._entries: list[Entry] = list(state.entries)
        self._pending: list[tuple[HardState | None, Sequence[Entry]]] = []
        self._last_index = self._entries[-1].index if self._entries else self._snapshot_index()
        self._fail_after: int | None = None
        self._failed = False
        self._closed = False
        self.syncs = 0  # durable writes so far (what FileStorage pays an fdatasync for)

    # -- test hooks ---------------------------------------------------------------------------

    def crash(self) -> MemoryStorage:
        """A new storage holding only what was durable; this one is closed (the process died)."""
        self._closed = True
        return MemoryStorage(self._durable())

    def inject_failure(self, *, after: int = 0) -> None:
        """Let ``after`` more durable writes succeed, then fail the next with ``StorageFailed``."""
        self._fail_after = after

    # -- Storage ------------------------------------------------------------------------------

    async def load(self) -> PersistedState:
        self._check()
        await trio.lowlevel.checkpoint()
        return self._durable()

    async def save(
        self,
        *,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None,
        sync: bool = True,
    ) -> None:
        self._check()
        if snapshot is not None and snapshot.is_empty:
            snapshot = None
        if snapshot is not None:
            self._check_newer(snapshot)
            check_batch(entries, snapshot.metadata.index)
        else:
            check_batch(entries, self._last_index)
        await trio.lowlevel.checkpoint()
        if snapshot is not None or sync:
            self._durable_write()
            self._flush_pending()
            if snapshot is not None:  # a snapshot from the leader replaces the whole log
                self._snapshot = snapshot
                self._entries.clear()
            self._apply(hard_state, entries)
        elif entries or hard_state is not None:
            self._pending.append((hard_state, list(entries)))
        if snapshot is not None:
            self._last_index = snapshot.metadata.index
        if entries:
            self._last_index = entries[-1].index

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        self._check()
        self._check_newer(snapshot)
        await trio.lowlevel.checkpoint()
        self._durable_write()
        self._flush_pending()
        self._snapshot = snapshot

    def begin_snapshot(self, metadata: SnapshotMetadata) -> MemorySnapshotSink:
        """A sink collecting the snapshot's bytes (nothing is durable until ``save_snapshot``
        or ``save`` takes its snapshot)."""
        self._check()
        return MemorySnapshotSink(metadata)

    async def compact(self, index: int) -> None:
        """Forget entries below ``index`` that the snapshot covers."""
        self._check()
        await trio.lowlevel.checkpoint()
        bound = min(index, self._snapshot_index() + 1)
        if self._entries and bound > self._entries[0].index:
            del self._entries[: bound - self._entries[0].index]

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._failed and self._pending:
            self._flush_pending()
        await trio.lowlevel.checkpoint()

    # -- internals ----------------------------------------------------------------------------

    def _check(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the storage is closed")
        if self._failed:
            raise StorageFailed("an earlier write failed; refusing further calls")

    def _check_newer(self, snapshot: Snapshot) -> None:
        if snapshot.metadata.index <= self._snapshot_index():
            raise ValueError(
                f"snapshot at {snapshot.metadata.index} is not newer than the saved one at "
                f"{self._snapshot_index()}"
            )

    def _snapshot_index(self) -> int:
        return 0 if self._snapshot is None else self._snapshot.metadata.index

    def _durable_write(self) -> None:
        if self._fail_after is not None:
            if self._fail_after == 0:
                self._failed = True
                raise StorageFailed("injected failure: the write was not made durable")
            self._fail_after -= 1
        self.syncs += 1

    def _apply(self, hard_state: HardState | None, entries: Sequence[Entry]) -> None:
        splice(self._entries, entries)
        if hard_state is not None:
            self._hard_state = hard_state

    def _flush_pending(self) -> None:
        for hs, entries in self._pending:
            self._apply(hs, entries)
        self._pending.clear()

    def _durable(self) -> PersistedState:
        entries = self._entries
        base = self._snapshot_index()
        if entries and entries[0].index <= base:
            entries = entries[base + 1 - entries[0].index :]
        return PersistedState(self._hard_state, self._snapshot, list(entries))
