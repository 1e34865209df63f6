"""The garbage collector: its pauses measured, and what lives for the whole run kept out of it.

A full collection walks every object the collector tracks. A node holds a great many that never
become garbage: the modules, classes and functions loaded at start-up, and a large state machine
(a million-key store: a 0.4 s collection). ``gc.freeze()`` moves every object tracked at that
moment into a generation the collector never walks (objects there are still freed by reference
counting when they go). So ``GcTuning`` freezes as the node starts, once it and what the
process built around it have settled (``started``), and each time a large snapshot replaced
the state (``state_replaced``) or the state grew by a quarter since the last freeze (``state_grew``,
told the size of each snapshot taken: a bulk load's records otherwise end up in the oldest
generation, walked by every full collection); no collection runs while a snapshot is restored
(``paused``). Freezes on growth are a geometric series: a store growing to a million keys
freezes a few dozen times in its life.
What it freezes that later becomes cyclic garbage is never
reclaimed: little at those moments, and nothing the runtime makes on its hot path.

What still triggers full collections under load is not garbage (the runtime makes next to no
cyclic garbage per request: ``bench gc --garbage``) but survivors: log entries kept until the
next snapshot, and the objects of requests in flight when a young collection runs, promoted
to the oldest generation. Every young collection promotes those, and CPython runs a full one
after 10 collections of the middle generation (when the survivors since the last one are a
quarter of the long-lived objects). So the thresholds are raised at the same moment
(``THRESHOLDS``): young collections ten times rarer, each promoting about what one did, and a
full one after 100 middle collections instead of 10.

``GcPauses`` (one per process: the collector is) records every collection through
``gc.callbacks``: count per generation, a histogram of pause times, the longest.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from ._stats import DEFAULT_BUCKETS, LatencyHistogram

__all__ = ["GcPauses", "GcStatistics", "GcTuning", "gc_pauses"]

# Seconds: 20 µs .. 1 s (a young collection takes tens of microseconds, a full one up to seconds).
_PAUSE_BUCKETS = (0.00002, *DEFAULT_BUCKETS[: DEFAULT_BUCKETS.index(1.0) + 1])
THRESHOLDS = (7000, 10, 100)  # CPython's defaults: (700, 10, 10)
SETTLE_SECONDS = 2.0  # after a node starts, before what exists is frozen
LARGE_STATE_BYTES = 1 << 20  # a restored snapshot at least this large is frozen after
GROWTH = 1.25  # a state this much larger than when last frozen is frozen again


@dataclass(slots=True)
class GcStatistics:
    """The process's collections since the recorder was installed."""

    collections: list[int] = field(default_factory=lambda: [0, 0, 0])  # per generation
    pauses: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(_PAUSE_BUCKETS))
    full_pauses: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(_PAUSE_BUCKETS))
    max_pause: float = 0.0
    freezes: int = 0


class GcPauses:
    """Installs itself in ``gc.callbacks`` and records every collection's pause."""

    def __init__(self) -> None:
        self.stats = GcStatistics()
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        stats = self.stats
        generation: int = info["generation"]
        stats.collections[generation] += 1
        stats.pauses.observe(pause)
        if generation == 2:
            stats.full_pauses.observe(pause)
        stats.max_pause = max(stats.max_pause, pause)


@dataclass(slots=True)
class _Process:
    """What there is one of per process: the recorder, and whether start-up was frozen."""

    pauses: GcPauses | None = None
    frozen_after_start: bool = False  # once per process: what start-up built lives until exit


_process = _Process()


def gc_pauses() -> GcPauses:
    """The process's recorder (installed on first use)."""
    if _process.pauses is None:
        _process.pauses = GcPauses()
    return _process.pauses


class GcTuning:
    """The collector policy of one node (``enabled=False``: leave the collector alone)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.stats = gc_pauses().stats
        self._frozen_size = 0  # of the state when it was last frozen

    async def started(self) -> None:
        """Raise the thresholds and freeze what the imports made as the node starts, and once
        the node and the process around it have settled, what they built (a task in the node's
        nursery; once per process). Until the first freeze, a full collection walks everything
        start-up made: a member catching up through its log in its first seconds set one off
        in its raft loop under the default thresholds (68 ms)."""
        if not self.enabled or _process.frozen_after_start:
            return
        _process.frozen_after_start = True
        gc.set_threshold(*THRESHOLDS)
        self._freeze()
        await trio.sleep(SETTLE_SECONDS)
        self._freeze()

    def state_replaced(self, size: int) -> None:
        """A snapshot of ``size`` bytes replaced the state machine's state."""
        if self.enabled and size >= LARGE_STATE_BYTES:
            self._freeze()
            self._frozen_size = size

    def state_grew(self, size: int) -> None:
        """A snapshot of ``size`` bytes was taken of the state: freeze it if it grew by a quarter
        since the last freeze (young collections first, so that what they free is not kept)."""
        if self.enabled and size >= LARGE_STATE_BYTES and size >= GROWTH * self._frozen_size:
            gc.collect(1)
            self._freeze()
            self._frozen_size = size

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No collections in the block (a snapshot being restored): it makes a great many
        objects and no garbage cycles, and the collections its allocations would set off
        only walk the growing state again and again (half a million keys: a second). What it
        made is frozen at the end: left young, the first collection after it would walk it all
        (a million keys: 0.15 s)."""
        if not self.enabled or not gc.isenabled():
            yield
            return
        gc.disable()
        try:
            yield
        finally:
            self._freeze()
            gc.enable()

    def _freeze(self) -> None:
        # O(1): the collector's lists are spliced, nothing is walked. (Counting what is frozen,
        # gc.get_freeze_count(), walks it all: 40 ms once a million records are.)
        gc.freeze()
        self.stats.freezes += 1
