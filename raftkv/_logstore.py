"""``RuntimeLogStore``: the in-memory log store the runtime hands the core.

A ``MemoryLogStore`` with two additions the runtime needs:

- a snapshot taken here is kept as the object the storage returned (``keep_snapshot``): a
  ``StoredSnapshot`` whose data stays in its file, where ``create_snapshot`` would keep bytes;
  the core then sends followers that object, and the transport streams it from the file;
- it counts the bytes of the entries appended (``appended_bytes``, each entry's data plus
  ``ENTRY_COST``, about what an entry costs in memory beside its data), which is what the
  snapshot trigger weighs against the state's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .core import Entry, HardState, MemoryLogStore, Snapshot

__all__ = ["ENTRY_COST", "RuntimeLogStore"]

ENTRY_COST = 64  # bytes: an Entry object and its list slot, beside its data


class RuntimeLogStore(MemoryLogStore):
    def __init__(self) -> None:
        super().__init__()
        self._kept: Snapshot | None = None
        self.appended_bytes = 0  # every entry appended since start, its data plus ENTRY_COST

    @classmethod
    def restore(
        cls, hard_state: HardState, snapshot: Snapshot | None, entries: Iterable[Entry]
    ) -> RuntimeLogStore:
        store = super().restore(hard_state, snapshot, entries)
        assert isinstance(store, RuntimeLogStore)
        return store

    def snapshot(self) -> Snapshot:
        current = super().snapshot()
        kept = self._kept
        return kept if kept is not None and kept.metadata == current.metadata else current

    def keep_snapshot(self, snapshot: Snapshot) -> None:
        """Record ``snapshot``, taken here at an applied index, as ``create_snapshot`` does
        (same checks), keeping the object itself."""
        meta = snapshot.metadata
        made = self.create_snapshot(meta.index, meta.conf_state, b"")
        if made.metadata != meta:
            raise ValueError(f"snapshot metadata {meta} does not match the log's {made.metadata}")
        self._kept = snapshot

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        super().apply_snapshot(snapshot)
        self._kept = None  # the store holds the received object itself

    def append(self, entries: Sequence[Entry]) -> None:
        super().append(entries)
        self.appended_bytes += sum(len(e.data) for e in entries) + ENTRY_COST * len(entries)
