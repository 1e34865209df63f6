"""Watches: every revision that touched a watched key, exactly once, in order, from a start.

A ``Watcher`` first catches up from the store's history (``changes_since``), then goes live:
the ``WatchHub``, told of each new revision by the store inside ``apply``, hands the revision
and the watched keys it changed to every matching watcher (found by key and by prefix length,
never by trying every watcher). Events are built from the history when they are delivered, so a
watcher costs a bounded queue of (revision, keys), not copies of values.

Nothing a watcher does can slow the raft loop or other watchers: a watcher whose queue is full
(its consumer is slow) is dropped from the hub and ends with ``WatchLost`` naming the revision
to resume from; so does every watcher when the node stops, and a watcher whose next revision
was compacted away. The caller resumes there (on this node or another): never a silent gap.
After a snapshot is restored, live watchers catch up again from the restored history.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from .._errors import Compacted, WatchLost
from ._results import WatchBatch
from ._store import KVStateMachine

__all__ = ["WatchHub", "WatchLost", "WatchStatistics", "Watcher"]

DEFAULT_BUFFER = 1000  # revisions a watcher may fall behind before it is dropped


@dataclass(slots=True)
class WatchStatistics:
    opened: int = 0
    open: int = 0
    batches_sent: int = 0  # revisions delivered, over every watcher
    fell_behind: int = 0  # watchers dropped because their consumer was too slow


class Watcher:
    """One watch: ``async for batch in watcher`` (or ``await watcher.next(timeout)``)."""

    def __init__(
        self,
        hub: WatchHub,
        *,
        key: bytes | None,
        prefix: bytes | None,
        start_revision: int,
        prev_kv: bool,
    ) -> None:
        self._hub = hub
        self.key = key
        self.prefix = prefix
        self.prev_kv = prev_kv
        # Invariant: every revision before next_revision that touched a watched key was
        # delivered, once, in order.
        self.next_revision = start_revision
        self._live = False  # registered with the hub: it hands over what happens from now
        self._pending: deque[tuple[int, tuple[bytes, ...]]] = deque()
        self._arrived = trio.Event()
        self._lost: str | None = None  # why the watch ended, once it has

    def matches(self, key: bytes) -> bool:
        if self.key is not None:
            return key == self.key
        return self.prefix is None or key.startswith(self.prefix)

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> WatchBatch:
        batch = await self.next(None)
        assert batch is not None
        return batch

    async def next(self, timeout: float | None) -> WatchBatch | None:
        """The next revision that touched a watched key; None if none came within ``timeout``
        (the watcher has then seen every revision up to the store's); ``WatchLost`` if the
        watch ended."""
        with trio.move_on_after(float("inf") if timeout is None else timeout):
            while True:
                batch = self._take()
                if batch is not None:
                    self._hub.stats.batches_sent += 1
                    return batch
                await self._arrived.wait()
                self._arrived = trio.Event()
        return None

    def _take(self) -> WatchBatch | None:
        """The next batch available now: from the live queue (also after the watch was lost:
        what was queued is still delivered), else caught up from history."""
        store = self._hub.store
        if self._pending:
            rev, keys = self._pending.popleft()
            if rev <= store.compact_revision:
                self._pending.clear()
                raise self._lose("the history this watch needs was compacted")
            self.next_revision = rev + 1
            return store.batch(rev, keys, prev_kv=self.prev_kv)
        if self._lost is not None:
            raise WatchLost(self._lost, self.next_revision)
        if self._live:
            return None
        try:
            for rev, keys in store.changes_since(self.next_revision):
                self.next_revision = rev + 1
                mine = tuple(k for k in keys if self.matches(k))
                if mine:
                    return store.batch(rev, mine, prev_kv=self.prev_kv)
        except Compacted:
            raise self._lose("the history this watch needs was compacted") from None
        # Live from here: the revisions after the store's, or after a start still in the future.
        self.next_revision = max(self.next_revision, store.revision + 1)
        self._hub._register(self)
        return None

    def _lose(self, reason: str) -> WatchLost:
        """End the watch: no more revisions are queued; the caller resumes where it stopped."""
        self._lost = reason
        self._hub._unregister(self)
        self._arrived.set()
        return WatchLost(reason, self.next_revision)

    # -- called by the hub -----------------------------------------------------------------------

    def _push(self, rev: int, keys: tuple[bytes, ...], buffer: int) -> None:
        if rev < self.next_revision:
            return  # before a start in the future: not asked for
        if len(self._pending) >= buffer:
            self._hub.stats.fell_behind += 1
            self._lose("watcher fell behind")
            return
        self._pending.append((rev, keys))
        self._arrived.set()

    def _resync(self) -> None:
        """The store was replaced by a snapshot: catch up again from its history."""
        self._pending.clear()
        self._live = False
        self._arrived.set()


class WatchHub:
    """Every watcher of one store, found by the keys a revision changed."""

    def __init__(self, store: KVStateMachine, *, buffer: int = DEFAULT_BUFFER) -> None:
        self.store = store
        self.buffer = buffer
        self.stats = WatchStatistics()
        self._by_key: dict[bytes, set[Watcher]] = {}
        self._by_prefix: dict[bytes, set[Watcher]] = {}
        self._prefix_lengths: Counter[int] = Counter()
        self._watchers: set[Watcher] = set()
        self._closed: str | None = None
        self._stop_observing = store.observe(self._on_revision, self._on_restore)

    @asynccontextmanager
    async def watch(
        self,
        *,
        key: bytes | None = None,
        prefix: bytes | None = None,
        start_revision: int,
        prev_kv: bool = False,
    ) -> AsyncIterator[Watcher]:
        """A watcher of ``key``, or of the keys under ``prefix`` (neither: every key), from
        ``start_revision``; ``Compacted`` if that history is gone."""
        store = self.store
        if store.compact_revision and start_revision <= store.compact_revision:
            raise Compacted(start_revision, store.compact_revision)
        watcher = Watcher(
            self, key=key, prefix=prefix, start_revision=max(start_revision, 1), prev_kv=prev_kv
        )
        if self._closed is not None:
            watcher._lose(self._closed)
        self._watchers.add(watcher)
        self.stats.opened += 1
        self.stats.open += 1
        try:
            yield watcher
        finally:
            self._unregister(watcher)
            self._watchers.discard(watcher)
            self.stats.open -= 1

    def close(self, reason: str = "the node is stopping") -> None:
        """End every watch (they resume elsewhere) and refuse new ones; stop observing."""
        if self._closed is not None:
            return
        self._closed = reason
        for watcher in list(self._watchers):
            if watcher._lost is None:
                watcher._lose(reason)
        self._stop_observing()

    def _register(self, watcher: Watcher) -> None:
        watcher._live = True
        if watcher.key is not None:
            self._by_key.setdefault(watcher.key, set()).add(watcher)
        else:
            prefix = watcher.prefix or b""
            self._by_prefix.setdefault(prefix, set()).add(watcher)
            self._prefix_lengths[len(prefix)] += 1

    def _unregister(self, watcher: Watcher) -> None:
        if not watcher._live:
            return
        watcher._live = False
        if watcher.key is not None:
            group, index = self._by_key, watcher.key
        else:
            group, index = self._by_prefix, watcher.prefix or b""
            self._prefix_lengths[len(index)] -= 1
            if not self._prefix_lengths[len(index)]:
                del self._prefix_lengths[len(index)]
        members = group[index]
        members.discard(watcher)
        if not members:
            del group[index]

    def _on_revision(self, rev: int) -> None:
        """A new revision was committed: hand its watched keys to their live watchers."""
        if not self._by_key and not self._by_prefix:
            return  # nobody watches (a restart's replay, a bulk load)
        keys = self.store.keys_changed_at(rev)
        found: dict[Watcher, list[bytes]] = {}
        for key in keys:
            for watcher in self._watchers_of(key):
                found.setdefault(watcher, []).append(key)
        for watcher, mine in found.items():
            watcher._push(rev, tuple(mine), self.buffer)

    def _watchers_of(self, key: bytes) -> list[Watcher]:
        out = list(self._by_key.get(key, ()))
        for length in self._prefix_lengths:
            if length <= len(key):
                out.extend(self._by_prefix.get(key[:length], ()))
        return out

    def _on_restore(self) -> None:
        for watcher in self._watchers:
            if watcher._live:
                self._unregister(watcher)
                watcher._resync()
