"""``Persister``: a Ready's durable part, written to storage first, then to the in-memory log
store the core reads (which therefore never holds what the disk does not)."""

from __future__ import annotations

import trio

from ._node_config import NodeStatistics
from .core import MemoryLogStore, Ready
from .storage import Storage

__all__ = ["Persister"]


class Persister:
    def __init__(self, storage: Storage, log_store: MemoryLogStore, stats: NodeStatistics) -> None:
        self._storage = storage
        self._log_store = log_store
        self._stats = stats

    async def save(self, rd: Ready) -> None:
        if rd.snapshot is None and not rd.entries and rd.hard_state is None:
            return
        started = trio.current_time()
        await self._storage.save(
            hard_state=rd.hard_state,
            entries=rd.entries,
            snapshot=rd.snapshot,
            sync=rd.must_sync,
        )
        self._stats.persist_latency.observe(trio.current_time() - started)
        store = self._log_store
        if rd.snapshot is not None:
            store.apply_snapshot(rd.snapshot)
        store.append(rd.entries)
        if rd.hard_state is not None:
            store.set_hard_state(rd.hard_state)
