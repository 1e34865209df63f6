"""Cheap counters and a fixed-bucket latency histogram for the runtime's statistics().

Observing costs one bisect and two additions; exporters (Prometheus in the daemon) read the
buckets at scrape time, so the hot path never touches an exporter's locks.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["LatencyHistogram"]

# Seconds: 50 µs .. 10 s, roughly x2.5 apart (the range of an fsync or a batch apply).
DEFAULT_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)


class LatencyHistogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last bucket is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.count += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= bound) pairs, ending with +Inf."""
        out = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def quantile(self, q: float) -> float:
        """An upper bound of the q-quantile (bucket resolution)."""
        if not self.count:
            return 0.0
        target = q * self.count
        for bound, running in self.cumulative():
            if running >= target:
                return bound
        return float("inf")
