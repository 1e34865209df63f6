"""``CommittedLog``: the register writes the cluster committed, in log order.

Fed by the first node that applies each index (State Machine Safety, checked by the invariants,
makes every other node apply the same). It is what the checks compare against: a watcher's
events, the tenures of a lock; and what a client could learn by reading back after a leader
change: ``index`` and ``term`` say how far the committed log is known to reach.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from raftkv.core import Entry

from ._statemachine import Applied

__all__ = ["CommittedLog", "Position", "Write"]

Write = tuple[int, str, str | None]
"""A write that changed a register: (index, key, value; None empties it)."""

Position = tuple[int, str]
"""A place in the history of writes: (index, key); ``(i, "")`` is just before index ``i``."""


class CommittedLog:
    def __init__(self) -> None:
        self.index = 0  # the highest index any node applied
        self.term = 0  # the term of that entry (terms never decrease along the log)
        # Per key, the writes that changed it: their indexes and values, in log order.
        self._indexes: dict[str, list[int]] = {}
        self._values: dict[str, list[str | None]] = {}

    def record(self, entry: Entry, applied: Applied | None) -> None:
        """``entry`` was applied for the first time anywhere, with this result."""
        self.index = entry.index
        self.term = entry.term
        if applied is not None:
            for key, value in applied.writes:
                self._indexes.setdefault(key, []).append(entry.index)
                self._values.setdefault(key, []).append(value)

    def writes(self, key: str) -> list[Write]:
        """Every committed write of ``key``, in log order."""
        values = self._values.get(key, [])
        return [(i, key, v) for i, v in zip(self._indexes.get(key, []), values, strict=True)]

    def between(self, keys: Iterable[str], lo: int, hi: int) -> list[Write]:
        """The committed writes of ``keys`` with ``lo <= index <= hi``, in log order."""
        out: list[Write] = []
        for key in keys:
            indexes = self._indexes.get(key)
            if not indexes:
                continue
            values = self._values[key]
            start = bisect.bisect_left(indexes, lo)
            end = bisect.bisect_right(indexes, hi)
            out.extend((indexes[p], key, values[p]) for p in range(start, end))
        out.sort()
        return out

    def next_after(self, keys: Iterable[str], position: Position) -> Write | None:
        """The first committed write of ``keys`` after ``position`` (None if none is known):
        in (index, key) order, as a transaction's writes share one index."""
        index, after_key = position
        best: Write | None = None
        for key in keys:
            indexes = self._indexes.get(key)
            if not indexes:
                continue
            # A key is written at most once per index: past ``index`` itself once at or
            # before ``after_key`` there.
            pos = (
                bisect.bisect_right(indexes, index)
                if key <= after_key
                else bisect.bisect_left(indexes, index)
            )
            if pos < len(indexes):
                write = (indexes[pos], key, self._values[key][pos])
                if best is None or write[:2] < best[:2]:
                    best = write
        return best
