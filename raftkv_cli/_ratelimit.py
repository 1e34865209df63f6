"""``LoginLimiter``: failed logins, rate-limited per (user, source address).

A token bucket per pair: ``burst`` failures at once, then one per ``interval`` seconds. Only
failures take from a bucket, so a user who types the password right is never slowed. In memory
and per node (a guesser spreading over members gets each member's budget): it bounds online
guessing, it is not an account lockout. At most ``max_entries`` pairs are tracked; past that the
ones that have refilled are forgotten first, then the oldest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LoginLimiter"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class LoginLimiter:
    def __init__(
        self,
        *,
        burst: int = 5,
        interval: float = 2.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self.interval = interval
        self.max_entries = max_entries
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def retry_after(self, user: str, source: str) -> int:
        """Seconds before this pair may try again (0: now)."""
        bucket = self._refilled((user, source))
        if bucket is None or bucket.tokens >= 1:
            return 0
        return max(1, math.ceil((1 - bucket.tokens) * self.interval))

    def failed(self, user: str, source: str) -> None:
        key = (user, source)
        bucket = self._refilled(key)
        if bucket is None:
            self._make_room()
            bucket = self._buckets[key] = _Bucket(float(self.burst), self.clock())
        bucket.tokens = max(0.0, bucket.tokens - 1)

    def _refilled(self, key: tuple[str, str]) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            now = self.clock()
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) / self.interval)
            bucket.stamp = now
        return bucket

    def _make_room(self) -> None:
        if len(self._buckets) < self.max_entries:
            return
        full = [k for k in self._buckets if (b := self._refilled(k)) and b.tokens >= self.burst]
        for key in full or [next(iter(self._buckets))]:
            del self._buckets[key]
