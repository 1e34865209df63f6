"""``RaftLog``: the stable entries in a ``LogStore`` followed by the unstable ones in memory.

Unstable entries and an unstable (received) snapshot are what the next ``Ready`` asks the runtime
to persist. The Ready contract guarantees nothing changes between ``ready()`` and ``advance()``,
so ``advance`` can simply declare everything that was handed out stable.

Invariants: ``applied <= committed <= last_index()``; unstable entries directly follow the
stable ones (or the unstable snapshot); ``committed`` never decreases.
"""

from __future__ import annotations

from ._logstore import Compacted, LogStore, Unavailable, limit_size
from ._types import Entry, EntryType, Snapshot

__all__ = ["RaftLog"]


class RaftLog:
    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.pending_snapshot: Snapshot | None = None
        self.unstable: list[Entry] = []
        self.unstable_offset = store.last_index() + 1
        # A snapshot is committed and applied by definition. The store may keep a tail of entries
        # before it (the catch-up tail), so its first index can be lower than the snapshot's.
        start = max(store.first_index() - 1, store.snapshot().metadata.index)
        self.committed = start
        self.applied = start

    # -- positions -------------------------------------------------------------------------------

    def first_index(self) -> int:
        if self.pending_snapshot is not None:
            return self.pending_snapshot.metadata.index + 1
        return self.store.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.unstable[-1].index
        if self.pending_snapshot is not None:
            return self.pending_snapshot.metadata.index
        return self.store.last_index()

    def last_stable_index(self) -> int:
        """The last index of the stable entries (handed out in a Ready and advanced); 0 while a
        received snapshot that replaces them is not durable yet."""
        if self.pending_snapshot is not None:
            return 0
        return self.unstable_offset - 1

    def term(self, index: int) -> int | None:
        """The term at ``index``, or None when it is compacted away or beyond the log."""
        off = self.unstable_offset
        if index >= off:
            i = index - off
            return self.unstable[i].term if i < len(self.unstable) else None
        snap = self.pending_snapshot
        if snap is not None:
            if index == snap.metadata.index:
                return snap.metadata.term
            return None  # older than the snapshot that replaces the stable log
        try:
            return self.store.term(index)
        except (Compacted, Unavailable):
            return None

    def last_term(self) -> int:
        term = self.term(self.last_index())
        assert term is not None, "the last entry's term is always known"
        return term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Is a candidate's log at least as up to date as ours? (Raft §5.4.1)"""
        our_term = self.last_term()
        return last_term > our_term or (last_term == our_term and last_index >= self.last_index())

    # -- reading entries -------------------------------------------------------------------------

    def entries(self, lo: int, hi: int, max_size: int = 0) -> list[Entry]:
        """Entries in [lo, hi). Raises ``Compacted`` if lo is not available any more."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise Compacted(lo)
        off = self.unstable_offset
        out: list[Entry] = []
        if lo < off:
            out = self.store.entries(lo, min(hi, off), max_size)
            if len(out) < min(hi, off) - lo:  # size limit reached inside the stable part
                return out
        if hi > off:
            out = out + self.unstable[max(lo, off) - off : hi - off]
        return limit_size(out, max_size)

    def next_committed_entries(self, max_size: int = 0) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        hi = self.committed + 1
        if lo >= hi:
            return []
        return self.entries(lo, hi, max_size)

    def has_next_committed_entries(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def unapplied_conf_change(self) -> bool:
        """Is a committed configuration change still waiting to be applied? (thesis §4.1)"""
        return any(e.type is EntryType.CONF_CHANGE for e in self.next_committed_entries())

    # -- writing ---------------------------------------------------------------------------------

    def append(self, entries: list[Entry]) -> int:
        """Append (replacing any conflicting suffix); return the new last index."""
        if not entries:
            return self.last_index()
        after = entries[0].index
        assert after > self.committed, f"truncating committed entries at {after}"
        off = self.unstable_offset
        if after == off + len(self.unstable):
            self.unstable.extend(entries)
        elif after <= off:
            # Replace the unstable part wholly; the stable entries >= after are overwritten
            # when these are persisted (LogStore.append truncates).
            self.unstable_offset = after
            self.unstable = list(entries)
        else:
            del self.unstable[after - off :]
            self.unstable.extend(entries)
        return self.last_index()

    def find_conflict(self, entries: tuple[Entry, ...]) -> int:
        """The index of the first entry that is new or conflicts with ours; 0 if none."""
        for e in entries:
            if self.term(e.index) != e.term:
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest (index', term') with index' <= index and term' <= term that we hold.

        Used on both sides of a rejection to skip whole terms at once (thesis §5.3 optimization).
        """
        index = min(index, self.last_index())
        while index > 0:
            t = self.term(index)
            if t is None:  # compacted: we cannot look further back
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def maybe_append(
        self, prev_index: int, prev_term: int, committed: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """Accept an AppendEntries if it matches at prev; the last index it covers, else None."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            assert conflict > self.committed, "a leader conflicts with a committed entry"
            self.append(list(entries[conflict - prev_index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            assert index <= self.last_index(), f"commit {index} beyond last {self.last_index()}"
            self.committed = index

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a snapshot (the follower's InstallSnapshot)."""
        index = snapshot.metadata.index
        self.pending_snapshot = snapshot
        self.unstable = []
        self.unstable_offset = index + 1
        self.committed = index

    def stable_to(self, last_index: int | None, had_snapshot: bool) -> None:
        """Everything handed out in the Ready is now durable."""
        if had_snapshot:
            self.pending_snapshot = None
        if last_index is not None:
            n = last_index - self.unstable_offset + 1
            del self.unstable[:n]
            self.unstable_offset = last_index + 1
