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
to the keys changed since the previous compaction (only they can hold versions it drops), not to
the store's size, and it is spread out: the keys to clean wait in a list; compaction cleans
``CLEAN_BATCH`` of them (under a millisecond) and every later revision twice as many as it wrote
keys (``CLEAN_PER_WRITE``, at least ``CLEAN_MIN`` and at most ``CLEAN_BATCH``), so that compacting
revisions that changed a million keys never stalls the writes behind it: cleaning costs each
revision about what writing it did, and a batch of many small revisions applied at once (a
follower catching up) no longer cleans a full batch for each. Keys with nothing to drop are
passed over four for the price of one. A batch is no larger than the largest transaction
(128 operations), so cleaning keeps pace with any write. Reads do not depend on it: a
version below the compaction point is never read, whether it is still there or not.

Snapshots read the live history, no copy (``view``): versions are immutable and only ever
appended until compaction removes some, so the state as of revision ``r`` is, for every key, its
versions up to ``r``. While a view is open (``pin``), compaction takes effect at once for reads
(``compact_revision``) but removes nothing until the last view closes: the view still sees every
version it started with, and its keys (compaction is the only thing that removes a key). A view
opened while keys still wait to be cleaned shows them as compaction will leave them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import Final, Protocol

from sortedcontainers import SortedList

from .._errors import Compacted, FutureRevision
from ._keymap import MASK, KeyMap

__all__ = ["KEY_CHUNK", "Event", "History", "HistoryView", "Record", "sorted_keys"]

KEY_CHUNK = SortedList.DEFAULT_LOAD_FACTOR  # keys per list inside a SortedList, as it makes them
# Measured on a quiet machine: cleaning a key of its old versions ~2.5 us, of a tombstone ~5 us
# (it leaves the sorted keys), passing over one with nothing to drop ~0.5 us.
CLEAN_BATCH = 128  # keys cleaned of compacted versions per compaction, at most (~0.3-0.7 ms)
CLEAN_PER_WRITE = 2  # ... per key a revision writes
CLEAN_MIN = 4  # ... per revision, at least
SKIP_COST = 4  # keys with nothing to drop passed over for the cost of cleaning one

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


def _compacted(versions: list[Record], rev: int) -> list[Record]:
    """What compaction at ``rev`` keeps of a key's versions: the one a read at ``rev`` sees
    (unless it is a tombstone: the key is absent then) and every later one."""
    visible = bisect_right(versions, rev, key=_mod) - 1
    if visible >= 0 and versions[visible][VALUE] is None:
        visible += 1
    return versions[max(visible, 0) :]


def sorted_keys(chunks: list[list[bytes]]) -> SortedList:
    """A SortedList of keys already ascending, in lists of ``KEY_CHUNK`` keys (the last may be
    shorter): what ``SortedList(keys)`` makes of them, taking the lists as they are instead of
    sorting the keys and cutting them up again (a million keys: 0.12 s at once). Sets
    sortedcontainers' own fields (2.x keeps ``_lists``, their last keys in ``_maxes``, ``_len``
    and a positional ``_index`` built on demand); the tests check the result against
    ``SortedList(keys)``."""
    keys = SortedList()
    keys._lists = chunks
    keys._maxes = [chunk[-1] for chunk in chunks]
    keys._len = sum(map(len, chunks))
    return keys


@dataclass(frozen=True, slots=True)
class Event:
    """One key's change at one revision: ``record`` is the new version (a tombstone for a
    delete), ``prev`` the version it replaced if that is retained and was not a tombstone."""

    key: bytes
    record: Record
    prev: Record | None


class RestoredParts(Protocol):
    """A snapshot reader's indexes: the keys ascending, in lists of ``KEY_CHUNK`` (the last may
    be shorter), ``latest`` and ``older`` by key, and how many keys are live."""

    latest: KeyMap[Record]
    older: KeyMap[list[Record]]
    key_chunks: list[list[bytes]]
    live: int


class HistoryView:
    """The history as of ``revision``, read from the live one as it is consumed (``History.view``);
    ``close()`` it (or exhaust ``versions()``) so that compaction can proceed."""

    def __init__(self, history: History) -> None:
        self._history = history
        self.revision = history.revision
        self.compact_revision = history.compact_revision
        self.changes = list(history._changes)
        # Keys compaction has not cleaned yet: this view shows its outcome (what it will keep).
        self._compact_pending = bool(history._to_clean)
        self._open = True
        history._pins += 1
        # Less the keys cleaning will remove: ``settle_count`` counts them out, a step at a time.
        self.key_count = len(history._keys)
        # Keys after the last one now are all created since: none has a version in the view.
        self._last_key: bytes | None = history._keys[-1] if history._keys else None
        self._uncounted = list(history._to_clean)  # the changes whose keys it shows compacted

    def settle_count(self, batch: int = 500) -> Iterator[None]:
        """Take the keys that cleaning will remove out of ``key_count``, ``batch`` of the keys
        waiting to be cleaned per step (after compacting a million keys' revisions, all at once
        would hold the node up for a second); ``key_count`` is exact once it is exhausted."""
        counted: set[bytes] = set()
        # Keys of those changes cleaned already are counted again: that changes nothing.
        keys = chain.from_iterable(self._uncounted)
        while True:
            part = list(islice(keys, batch))
            if not part:
                break
            for key in part:
                if key not in counted and self._existed(key):
                    counted.add(key)
                    if not self._versions_of(key):
                        self.key_count -= 1
            yield
        self._uncounted = []

    def _existed(self, key: bytes) -> bool:
        """Whether ``key`` was in the history at ``revision`` (deleted or not)."""
        h = self._history
        record = h._latest.get(key)
        if record is None:
            return False
        older = h._older.get(key)
        return (older[0] if older else record)[MOD] <= self.revision

    def versions(self, batch: int = 512) -> Iterator[tuple[bytes, list[Record]]]:
        """Every key's versions up to ``revision``, oldest first, in key order."""
        for part in self.batches(batch):
            yield from part

    def batches(self, batch: int = 512) -> Iterator[list[tuple[bytes, list[Record]]]]:
        """``versions()`` a batch of ``batch`` keys at a time, resuming after the last one
        (writes between batches are fine). A batch may be empty or short: keys created since
        the view have no versions in it, and a bulk load running meanwhile makes many."""
        keys_of = self._history._keys
        last: bytes | None = None
        try:
            while True:
                if last is None:
                    keys = list(islice(keys_of.irange(maximum=self._last_key), batch))
                else:
                    bounds = keys_of.irange(last, self._last_key, inclusive=(False, True))
                    keys = list(islice(bounds, batch))
                if not keys:
                    return
                last = keys[-1]
                versions_of = self._versions_of
                yield [(key, kept) for key in keys if (kept := versions_of(key))]
        finally:
            self.close()

    def _versions_of(self, key: bytes) -> list[Record]:
        """``key``'s versions up to ``revision`` (none for a key created since)."""
        h, rev = self._history, self.revision
        record = h._latest[key]
        if record[MOD] <= rev:
            more = h._older.get(key)
            kept = [*more, record] if more else [record]
        else:
            kept = [r for r in h._older.get(key, ()) if r[MOD] <= rev]
        if self._compact_pending:
            kept = _compacted(kept, self.compact_revision)
        return kept

    def close(self) -> None:
        if self._open:
            self._open = False
            self._history._unpin()


class History:
    def __init__(self) -> None:
        # Invariants: _keys == set(_latest);
        # every _older list is non-empty and ascends strictly by mod_revision, below the key's
        # _latest; every retained mod_revision is >= the compaction point, except for each key's
        # version visible at it; _changes ascends by revision, all > compact_revision.
        self.revision = 0
        self.compact_revision = 0
        # A million keys' dicts would copy themselves whole as they grow: KeyMaps grow in parts.
        self._latest: KeyMap[Record] = KeyMap()
        self._older: KeyMap[list[Record]] = KeyMap()
        self._keys: SortedList = SortedList()
        self._live = 0
        self._changes: list[tuple[int, tuple[bytes, ...]]] = []
        # Open views (snapshots being read); while there is one, compaction removes nothing.
        self._pins = 0
        # The keys of the changes compaction dropped, not yet cleaned (a key may repeat), as
        # those changes' key tuples, cleaned in order (_cleaned: of the first, how many keys
        # are): dropping a change costs the same whatever it changed.
        self._to_clean: deque[tuple[bytes, ...]] = deque()
        self._cleaned = 0

    # -- writes (one revision at a time: put/delete at ``revision + 1``, then ``commit``) --------

    def put(self, key: bytes, value: bytes, lease: int, rev: int) -> Record | None:
        """Write ``key`` at revision ``rev``; returns the live version it replaced."""
        shard = hash(key) & MASK
        latest = self._latest.shards[shard]
        prev = latest.get(key)
        if prev is None:
            self._keys.add(key)
        else:
            self._older.shards[shard].setdefault(key, []).append(prev)
        if prev is None or prev[VALUE] is None:
            self._live += 1
            latest[key] = (value, rev, rev, 1, lease)
            return None
        latest[key] = (value, prev[CREATE], rev, prev[VERSION] + 1, lease)
        return prev

    def delete(self, key: bytes, rev: int) -> Record | None:
        """Delete ``key`` at ``rev`` if it exists; returns the version deleted."""
        shard = hash(key) & MASK
        latest = self._latest.shards[shard]
        prev = latest.get(key)
        if prev is None or prev[VALUE] is None:
            return None
        self._older.shards[shard].setdefault(key, []).append(prev)
        latest[key] = (None, 0, rev, 0, 0)
        self._live -= 1
        return prev

    def commit(self, rev: int, keys: tuple[bytes, ...]) -> None:
        """Close revision ``rev``, which changed ``keys`` (in the order of the operations)."""
        assert rev == self.revision + 1 and keys, "a revision changes something, in order"
        self.revision = rev
        self._changes.append((rev, keys))
        if self._to_clean and not self._pins:
            self._clean(min(CLEAN_BATCH, max(CLEAN_MIN, CLEAN_PER_WRITE * len(keys))))

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
        i = bisect_right(self._changes, rev, key=lambda c: c[0])
        self._to_clean.extend(keys for _, keys in self._changes[:i])
        del self._changes[:i]
        self.compact_revision = rev
        if not self._pins:
            self._clean(CLEAN_BATCH)

    def _clean(self, budget: int) -> None:
        """Remove the versions compaction made unreadable from up to ``budget`` of the keys
        waiting for it. Only a key changed at a revision compaction dropped can hold one:
        every other key's versions up to the compaction point were already reduced to the one
        visible there. Cleaning a key at the newest compaction point does what every earlier
        compaction would have done to it. A key with one live version and no other has nothing
        to drop (most keys of a bulk load): it is passed over, and costs ``1 / SKIP_COST`` of
        the budget."""
        pending, rev = self._to_clean, self.compact_revision
        latest, older = self._latest.shards, self._older.shards
        work = budget * SKIP_COST
        while work > 0 and pending:
            keys, i = pending[0], self._cleaned
            n = len(keys)
            while i < n and work > 0:
                key = keys[i]
                i += 1
                shard = hash(key) & MASK
                record = latest[shard].get(key)
                # Older versions to drop, or a tombstone (the key may go altogether).
                if key in older[shard] or (record is not None and record[VALUE] is None):
                    self._compact_key(key, rev)
                    work -= SKIP_COST
                else:
                    work -= 1
            if i < n:
                self._cleaned = i
            else:
                pending.popleft()
                self._cleaned = 0

    def keys_to_clean(self) -> list[bytes]:
        """The keys still waiting to be cleaned (a key may repeat)."""
        if not self._to_clean:
            return []
        first, *rest = self._to_clean
        return [*first[self._cleaned :], *chain.from_iterable(rest)]

    def _unpin(self) -> None:
        self._pins -= 1
        if not self._pins and self._to_clean:
            self._clean(CLEAN_BATCH)

    def _compact_key(self, key: bytes, rev: int) -> None:
        latest = self._latest[key]
        older = self._older.pop(key, [])
        kept = _compacted([*older, latest], rev)
        if not kept:
            del self._latest[key]
            self._keys.remove(key)
        elif len(kept) > 1:
            self._older[key] = kept[:-1]

    # -- snapshots -------------------------------------------------------------------------------

    def view(self) -> HistoryView:
        """The history as of now, for a snapshot, which later writes leave alone: it reads
        the live history (no copy but the change index) and holds compaction back while open."""
        return HistoryView(self)

    @classmethod
    def restored(
        cls,
        revision: int,
        compact_revision: int,
        parts: RestoredParts,
        changes: list[tuple[int, tuple[bytes, ...]]],
    ) -> History:
        """A history from a snapshot's indexes as its reader built them (checked by it)."""
        h = cls()
        h.revision, h.compact_revision = revision, compact_revision
        h._latest, h._older = parts.latest, parts.older
        h._keys = sorted_keys(parts.key_chunks)
        h._live = parts.live
        h._changes = changes
        return h

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
            if records[-1][VALUE] is not None:
                h._live += 1
        h._keys = SortedList(keys)
        h._changes = changes
        return h
