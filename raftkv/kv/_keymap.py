"""``KeyMap``: a mapping from keys that grows without a pause.

A dict grows by building a table twice as large and inserting every entry again, all in the
call that filled the old one: the put that takes a store from 699 050 keys to 699 051 copies
them all (about 40 ms here), and the raft loop, like every other task on the event loop, waits
for it. Go's maps, etcd's, grow a bucket at a time for that reason. A ``KeyMap`` is 256 dicts,
a key's chosen by its hash (cached in the bytes object: computing it again costs nothing): each
grows on its own, copying a 256th of the keys, well under a millisecond at a million keys.
Iteration order is by shard, not by insertion: callers that need an order keep their own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import and_, setitem
from typing import Generic, TypeVar, overload

__all__ = ["MASK", "KeyMap"]

SHARD_BITS = 8
MASK = (1 << SHARD_BITS) - 1

_MISSING = object()

V = TypeVar("V")
D = TypeVar("D")


class KeyMap(Generic[V]):
    """A dict of ``bytes`` keys, split so that no insertion copies more than a 256th of it."""

    __slots__ = ("shards",)

    def __init__(self) -> None:
        # The dict holding a key is ``shards[hash(key) & MASK]``, the same in every KeyMap: a
        # hot path working on two KeyMaps for one key may index both with one lookup.
        self.shards: list[dict[bytes, V]] = [{} for _ in range(1 << SHARD_BITS)]

    @overload
    def get(self, key: bytes) -> V | None: ...
    @overload
    def get(self, key: bytes, default: D) -> V | D: ...
    def get(self, key: bytes, default: object = None) -> object:
        return self.shards[hash(key) & MASK].get(key, default)

    def __getitem__(self, key: bytes) -> V:
        return self.shards[hash(key) & MASK][key]

    def __setitem__(self, key: bytes, value: V) -> None:
        self.shards[hash(key) & MASK][key] = value

    def __delitem__(self, key: bytes) -> None:
        del self.shards[hash(key) & MASK][key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and key in self.shards[hash(key) & MASK]

    @overload
    def pop(self, key: bytes) -> V: ...
    @overload
    def pop(self, key: bytes, default: D) -> V | D: ...
    def pop(self, key: bytes, default: object = _MISSING) -> object:
        shard = self.shards[hash(key) & MASK]
        return shard.pop(key) if default is _MISSING else shard.pop(key, default)

    def setdefault(self, key: bytes, default: V) -> V:
        return self.shards[hash(key) & MASK].setdefault(key, default)

    def put_many(self, keys: Iterable[bytes], values: Iterable[V]) -> None:
        """``self[k] = v`` for each pair, iterated in C (a snapshot's keys: a million of them)."""
        keys = keys if isinstance(keys, list | tuple) else list(keys)
        deque(map(setitem, self._shards_of(keys), keys, values), maxlen=0)

    def _shards_of(self, keys: Iterable[bytes]) -> Iterator[dict[bytes, V]]:
        """The dict of each key, in order (lazily, in C)."""
        return map(self.shards.__getitem__, map(and_, map(hash, keys), repeat(MASK)))

    def __len__(self) -> int:
        return sum(map(len, self.shards))

    def __iter__(self) -> Iterator[bytes]:
        for shard in self.shards:
            yield from shard

    def items(self) -> Iterator[tuple[bytes, V]]:
        for shard in self.shards:
            yield from shard.items()
