"""The log's stable part, as the core reads it, and ``MemoryLogStore``.

The core only *reads* a ``LogStore``: entries the runtime has made durable, the latest snapshot,
and the hard state and configuration it started from. The runtime writes it while handling a
``Ready`` (after the matching durable write), in this order: ``apply_snapshot``, ``append``,
``set_hard_state``. ``MemoryLogStore`` is both the simulator's "disk" and the runtime's in-memory
mirror of what ``Storage`` persisted.

Invariant: the store holds a contiguous run of entries (first_index .. last_index) directly
after its snapshot; ``term(snapshot.index)`` is known.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from ._types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata

__all__ = ["Compacted", "LogStore", "MemoryLogStore", "Unavailable", "limit_size"]


class Compacted(LookupError):
    """The requested index lies in the snapshot; its entry is gone."""


class Unavailable(LookupError):
    """The requested index is beyond the last stored entry."""


class LogStore(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_size: int = 0) -> list[Entry]:
        """Entries in [lo, hi); at most ``max_size`` payload bytes (always >= 1 entry); 0: all."""
        ...

    def term(self, index: int) -> int: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


def limit_size(entries: list[Entry], max_size: int) -> list[Entry]:
    """The longest prefix within ``max_size`` payload bytes, never fewer than one entry."""
    if max_size <= 0 or len(entries) <= 1:
        return entries
    total = 0
    for i, e in enumerate(entries):
        total += len(e.data)
        if total > max_size and i > 0:
            return entries[:i]
    return entries


class MemoryLogStore:
    """A ``LogStore`` in memory. Not thread-safe; the owning task alone touches it."""

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        # _entries[0] is a sentinel carrying the snapshot's (index, term).
        self._entries: list[Entry] = [Entry(0, 0)]

    @classmethod
    def restore(
        cls, hard_state: HardState, snapshot: Snapshot | None, entries: Iterable[Entry]
    ) -> MemoryLogStore:
        """The store rebuilt from what ``Storage.load`` returned (the restart recipe)."""
        store = cls()
        if snapshot is not None and not snapshot.is_empty:
            store.apply_snapshot(snapshot)
        store.append(list(entries))
        store.set_hard_state(hard_state)
        return store

    # -- LogStore ------------------------------------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    def _offset(self) -> int:
        return self._entries[0].index

    def first_index(self) -> int:
        return self._offset() + 1

    def last_index(self) -> int:
        return self._offset() + len(self._entries) - 1

    def term(self, index: int) -> int:
        offset = self._offset()
        if index < offset:
            raise Compacted(index)
        if index - offset >= len(self._entries):
            raise Unavailable(index)
        return self._entries[index - offset].term

    def entries(self, lo: int, hi: int, max_size: int = 0) -> list[Entry]:
        offset = self._offset()
        if lo <= offset:
            raise Compacted(lo)
        if hi > self.last_index() + 1:
            raise Unavailable(hi)
        return limit_size(self._entries[lo - offset : hi - offset], max_size)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writes (runtime / simulator) ----------------------------------------------------------

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the log with a snapshot received from the leader."""
        meta = snapshot.metadata
        if meta.index <= self._snapshot.metadata.index:
            raise ValueError(
                f"snapshot at {meta.index} is not newer than {self._snapshot.metadata.index}"
            )
        self._snapshot = snapshot
        self._entries = [Entry(meta.term, meta.index)]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append, replacing any stored entries at or after ``entries[0].index``."""
        if not entries:
            return
        first = entries[0].index
        offset = self._offset()
        if first <= offset:
            # Entries already covered by the snapshot are dropped.
            entries = [e for e in entries if e.index > offset]
            if not entries:
                return
            first = entries[0].index
        if first > self.last_index() + 1:
            raise ValueError(f"gap: appending {first} after {self.last_index()}")
        del self._entries[first - offset :]
        self._entries.extend(entries)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine taken at ``index`` (already applied)."""
        if index <= self._snapshot.metadata.index:
            raise ValueError(f"snapshot at {index} is not newer than the current one")
        if index > self.last_index():
            raise ValueError(f"snapshot at {index} beyond last index {self.last_index()}")
        if index > self._hard_state.commit:
            raise ValueError(f"snapshot at {index} beyond commit {self._hard_state.commit}")
        meta = SnapshotMetadata(index, self.term(index), conf_state)
        self._snapshot = Snapshot(meta, data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Discard entries up to and including ``index`` (which must be <= the snapshot's)."""
        offset = self._offset()
        if index <= offset:
            return
        if index > self._snapshot.metadata.index:
            raise ValueError(f"cannot compact to {index} beyond the snapshot")
        del self._entries[: index - offset]
        # the sentinel keeps (index, term) of the new first-minus-one position
        self._entries[0] = Entry(self._entries[0].term, self._entries[0].index)
