"""``History``: every version of every key since the compaction point (multi-version, as etcd's
store). Pure: the key-value state machine drives it, one revision at a time.

A version is a ``Record`` tuple ``(value, create_revision, mod_revision, version, lease)``; a
deletion is a tombstone, a record whose value is ``None``. Plain tuples of bytes and ints: the
garbage collector stops tracking them, so a full collection does not walk the whole store.

- ``_latest[key]``: the newest version of every key that exists now, or whose deletion is still
  retained (a tombstone). ``_keys`` holds the same keys, sorted, for ranges.
- ``_older[key]``: the key's earlier versions, oldest first, for keys changed since compaction.
- ``_changes``: ``(revision, keys changed at it)`` for every retained revision, in order; the
  events of a revision are read from the keys' versions (``events``).

Compaction at ``c`` keeps what a read at ``c`` or later needs (as etcd): for each key, the
version visible at ``c`` (unless it is a tombstone) and every later one; revisions below ``c``
can no longer be read (``Compacted``). The changes of revisions after ``c`` stay, each with the
version it replaced, so a watch can start at ``c + 1`` at the earliest. Its cost is proportional
to the keys changed since the previous compaction, not to the store's size.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from sortedcontainers import SortedList

from .._errors import Compacted, FutureRevision

__all__ = ["Event", "History", "HistoryView", "Record"]

# Record fields, by position.
VALUE: Final = 0
CREATE: Final = 1
MOD: Final = 2
VERSION: Final = 3
LEASE: Final = 4

# (value, create_revision, mod_revision, version, lease); value None: a tombstone.
Record = tuple[bytes | None, int, int, int, int]


def _mod(record: Record) -> int:
    return record[MOD]


@dataclass(frozen=True, slots=True)
class Event:
    """One key's change at one revision: ``record`` is the new version (a tombstone for a
    delete), ``prev`` the version it replaced if that is retained and was not a tombstone."""

    key: bytes
    record: Record
    prev: Record | None


@dataclass(frozen=True, slots=True)
class HistoryView:
    revision: int
    compact_revision: int
    keys: list[bytes]
    latest: dict[bytes, Record]
    older: dict[bytes, list[Record]]
    changes: list[tuple[int, tuple[bytes, ...]]]

    def versions(self) -> Iterator[tuple[bytes, list[Record]]]:
        """Every key's retained versions, oldest first, in key order."""
        older = self.older
        for key in self.keys:
            yield key, [*older.get(key, ()), self.latest[key]]


class History:
    def __init__(self) -> None:
        # Invariants: _keys == set(_latest); _tombstones == {k | _latest[k] is a tombstone};
        # every _older list is non-empty and ascends strictly by mod_revision, below the key's
        # _latest; every retained mod_revision is >= the compaction point, except for each key's
        # version visible at it; _changes ascends by revision, all > compact_revision.
        self.revision = 0
        self.compact_revision = 0
        self._latest: dict[bytes, Record] = {}
        self._older: dict[bytes, list[Record]] = {}
        self._tombstones: set[bytes] = set()
        self._keys: SortedList = SortedList()
        self._live = 0
        self._changes: list[tuple[int, tuple[bytes, ...]]] = []

    # -- writes (one revision at a time: put/delete at ``revision + 1``, then ``commit``) --------

    def put(self, key: bytes, value: bytes, lease: int, rev: int) -> Record | None:
        """Write ``key`` at revision ``rev``; returns the live version it replaced."""
        prev = self._latest.get(key)
        if prev is None:
            self._keys.add(key)
        else:
            self._older.setdefault(key, []).append(prev)
        if prev is None or prev[VALUE] is None:
            self._live += 1
            self._tombstones.discard(key)
            self._latest[key] = (value, rev, rev, 1, lease)
            return None
        self._latest[key] = (value, prev[CREATE], rev, prev[VERSION] + 1, lease)
        return prev

    def delete(self, key: bytes, rev: int) -> Record | None:
        """Delete ``key`` at ``rev`` if it exists; returns the version deleted."""
        prev = self._latest.get(key)
        if prev is None or prev[VALUE] is None:
            return None
        self._older.setdefault(key, []).append(prev)
        self._latest[key] = (None, 0, rev, 0, 0)
        self._tombstones.add(key)
        self._live -= 1
        return prev

    def commit(self, rev: int, keys: tuple[bytes, ...]) -> None:
        """Close revision ``rev``, which changed ``keys`` (in the order of the operations)."""
        assert rev == self.revision + 1 and keys, "a revision changes something, in order"
        self.revision = rev
        self._changes.append((rev, keys))

    # -- reads -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._live

    def check_readable(self, at: int | None) -> int:
        """The revision a read ``at`` (None: now) reads, or ``Compacted``/``FutureRevision``."""
        if at is None:
            return self.revision
        if at > self.revision:
            raise FutureRevision(at, self.revision)
        if at < self.compact_revision:
            raise Compacted(at, self.compact_revision)
        return at

    def get(self, key: bytes, at: int | None = None) -> Record | None:
        """The live version of ``key`` as of revision ``at`` (checked readable; None: now)."""
        record = self._latest.get(key)
        if record is None:
            return None
        if at is not None and record[MOD] > at:
            older = self._older.get(key)
            if older is None:
                return None  # created after ``at``
            i = bisect_right(older, at, key=_mod) - 1
            if i < 0:
                return None
            record = older[i]
        return None if record[VALUE] is None else record

    def keys_from(self, start: bytes, *, inclusive: bool = True) -> Iterator[bytes]:
        """Every key with a retained version, ascending from ``start``."""
        return self._keys.irange(minimum=start, inclusive=(inclusive, True))  # type: ignore[no-any-return]

    def events(self, rev: int, keys: tuple[bytes, ...]) -> tuple[Event, ...]:
        """The changes of revision ``rev`` (as ``changes`` lists it)."""
        out = []
        for key in keys:
            latest = self._latest[key]
            older = self._older.get(key, [])
            if latest[MOD] == rev:
                record, prev = latest, older[-1] if older else None
            else:
                i = bisect_right(older, rev, key=_mod) - 1
                record, prev = older[i], older[i - 1] if i > 0 else None
            assert record[MOD] == rev, "the change index names a version that exists"
            out.append(Event(key, record, None if prev is None or prev[VALUE] is None else prev))
        return tuple(out)

    def has_version(self, key: bytes, rev: int) -> bool:
        """Whether ``key`` has a retained version written at revision ``rev``."""
        latest = self._latest.get(key)
        if latest is None or latest[MOD] < rev:
            return False
        if latest[MOD] == rev:
            return True
        older = self._older.get(key, [])
        i = bisect_right(older, rev, key=_mod) - 1
        return i >= 0 and older[i][MOD] == rev

    def changes(self, start: int) -> Iterator[tuple[int, tuple[bytes, ...]]]:
        """``(revision, keys changed)`` for every revision from ``start``; ``Compacted`` unless
        ``start`` is after the compaction point."""
        if self.compact_revision and start <= self.compact_revision:
            raise Compacted(start, self.compact_revision)
        changes = self._changes
        i = bisect_right(changes, start - 1, key=lambda c: c[0])
        for j in range(i, len(changes)):
            yield changes[j]

    def newest_change(self, rev: int) -> tuple[bytes, ...]:
        """The keys the newest revision, ``rev``, changed."""
        newest, keys = self._changes[-1]
        assert newest == rev, "only the newest revision is routed to watchers"
        return keys

    @property
    def retained_revisions(self) -> int:
        return len(self._changes)

    # -- compaction ------------------------------------------------------------------------------

    def compact(self, rev: int) -> None:
        """Forget what no read at ``rev`` or later needs (``rev`` must be readable)."""
        self.check_readable(rev)
        for key in set(self._older) | self._tombstones:
            self._compact_key(key, rev)
        i = bisect_right(self._changes, rev, key=lambda c: c[0])
        del self._changes[:i]
        self.compact_revision = rev

    def _compact_key(self, key: bytes, rev: int) -> None:
        latest = self._latest[key]
        older = self._older.pop(key, [])
        versions = [*older, latest]
        visible = bisect_right(versions, rev, key=_mod) - 1  # the version a read at rev sees
        if visible >= 0 and versions[visible][VALUE] is None:
            visible += 1  # a tombstone is not needed: the key is absent at rev
        kept = versions[max(visible, 0) :]
        if not kept:
            del self._latest[key]
            self._tombstones.discard(key)
            self._keys.remove(key)
        elif len(kept) > 1:
            self._older[key] = kept[:-1]

    # -- snapshots -------------------------------------------------------------------------------

    def view(self) -> HistoryView:
        """A view of the history now that later writes leave alone: copies of the indexes (the
        versions themselves are immutable tuples, shared)."""
        return HistoryView(
            self.revision,
            self.compact_revision,
            list(self._keys),
            self._latest.copy(),
            {k: list(v) for k, v in self._older.items()},
            list(self._changes),
        )

    @classmethod
    def restore(
        cls,
        revision: int,
        compact_revision: int,
        versions: Iterator[tuple[bytes, list[Record]]],
        changes: list[tuple[int, tuple[bytes, ...]]],
    ) -> History:
        """A history from a snapshot's parts (checked by the snapshot reader)."""
        h = cls()
        h.revision, h.compact_revision = revision, compact_revision
        keys = []
        for key, records in versions:
            keys.append(key)
            h._latest[key] = records[-1]
            if len(records) > 1:
                h._older[key] = records[:-1]
            if records[-1][VALUE] is None:
                h._tombstones.add(key)
            else:
                h._live += 1
        h._keys = SortedList(keys)
        h._changes = changes
        return h
