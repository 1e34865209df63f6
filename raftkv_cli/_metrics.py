"""Prometheus metrics, collected at scrape time from the node's statistics.

Nothing on the request path touches prometheus_client: the runtime keeps plain counters and
fixed-bucket histograms, and this collector turns them into metric families when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

import raftkv
from raftkv.kv import KVService

__all__ = ["PeerStats", "metrics_registry", "render_metrics"]

# Where peer-transport counters come from (event name -> count).
PeerStats = Callable[[], Mapping[str, int]]


def _histogram(name: str, doc: str, h: raftkv.LatencyHistogram) -> HistogramMetricFamily:
    buckets = [
        ("+Inf" if bound == float("inf") else repr(bound), count) for bound, count in h.cumulative()
    ]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=h.sum)


def _runtime_metrics(stats: raftkv.NodeStatistics) -> Iterator[Metric]:
    """The raft loop's iterations, the newest snapshot, the garbage collector's pauses."""
    gauges = {
        "loop_stall_max_seconds": (stats.loop_stall_max, "Longest raft-loop iteration."),
        "snapshot_build_seconds": (stats.snapshot_build_seconds, "Newest snapshot's build."),
        "snapshot_bytes": (stats.snapshot_bytes, "Size of the newest snapshot taken here."),
        "snapshot_prepare_seconds": (
            stats.snapshot_prepare_seconds,
            "Reading the newest snapshot received, beside the raft loop.",
        ),
        "snapshot_restore_seconds": (
            stats.snapshot_restore_seconds,
            "Installing the newest snapshot restored (in the raft loop).",
        ),
        "gc_max_pause_seconds": (stats.gc.max_pause, "Longest garbage collection (process)."),
    }
    for name, (value, doc) in gauges.items():
        yield GaugeMetricFamily(f"raftkv_{name}", doc, value=value)
    yield CounterMetricFamily(
        "raftkv_gc_freezes",
        "Times what lives was frozen out of the collector's walks (start-up, large states).",
        value=stats.gc.freezes,
    )
    yield _histogram(
        "raftkv_loop_iteration_seconds", "Raft-loop iterations (input to idle).", stats.loop_busy
    )
    yield _histogram("raftkv_gc_pause_seconds", "Garbage-collection pauses.", stats.gc.pauses)
    yield _histogram(
        "raftkv_gc_full_pause_seconds", "Full (generation 2) collections.", stats.gc.full_pauses
    )


class _NodeCollector:
    def __init__(self, node: raftkv.Node, service: KVService, peer_stats: PeerStats | None) -> None:
        self.node = node
        self.service = service
        self.peer_stats = peer_stats

    def _store_metrics(self) -> Iterator[Metric]:
        store, watches = self.service.store, self.service.watches.stats
        gauges = {
            "revision": (store.revision, "The store's current revision."),
            "compact_revision": (store.compact_revision, "The oldest revision still readable."),
            "history_revisions": (store.retained_revisions, "Revisions the history retains."),
            "keys": (len(store), "Keys in the store."),
            "watchers": (watches.open, "Watches open on this node."),
        }
        for name, (value, doc) in gauges.items():
            yield GaugeMetricFamily(f"raftkv_{name}", doc, value=value)
        counters = {
            "watch_events": (watches.batches_sent, "Revisions delivered to watchers."),
            "watchers_fell_behind": (watches.fell_behind, "Watches ended for falling behind."),
        }
        for name, (value, doc) in counters.items():
            yield CounterMetricFamily(f"raftkv_{name}", doc, value=value)
        yield from self._lease_metrics()

    def _lease_metrics(self) -> Iterator[Metric]:
        service, counted = self.service, self.service.leases.stats
        live = len(service.store.lease_ids())
        yield GaugeMetricFamily("raftkv_leases", "Leases in the store.", value=live)
        counters = {
            "granted": (counted.granted, "Leases granted through this node."),
            "revoked": (counted.revoked, "Leases revoked through this node."),
            "expired": (counted.expired, "Leases this node revoked as their leader."),
            "keepalives": (counted.keepalives, "Keep-alives this node served as the leader."),
        }
        for name, (value, doc) in counters.items():
            yield CounterMetricFamily(f"raftkv_leases_{name}", doc, value=value)

    def collect(self) -> Iterator[Metric]:
        stats = self.node.statistics()
        status = self.node.status()
        counters = {
            "proposals": (stats.proposals, "Proposals received by this node."),
            "proposals_dropped": (stats.proposals_dropped, "Proposals refused before the log."),
            "applied_entries": (stats.applied_entries, "Committed entries applied here."),
            "reads": (stats.reads, "Linearizable reads served through ReadIndex."),
            "leader_changes": (stats.leader_changes, "Times this node saw the leader change."),
            "elections_won": (stats.elections_won, "Elections this node won."),
            "snapshots_taken": (stats.snapshots_taken, "Snapshots of the state machine taken."),
            "snapshots_restored": (stats.snapshots_restored, "Snapshots received and restored."),
            "ready_batches": (stats.ready_batches, "Ready batches handled (one fsync each)."),
        }
        for name, (value, doc) in counters.items():
            yield CounterMetricFamily(f"raftkv_{name}", doc, value=value)
        gauges = {
            "term": (status.term, "Current Raft term."),
            "commit_index": (status.commit, "Highest log index known committed."),
            "applied_index": (status.applied, "Highest log index applied here."),
            "is_leader": (int(status.leader == status.id), "1 if this node is the leader."),
            "has_leader": (int(status.leader is not None), "1 if a leader is known."),
            "members": (len(status.members), "Members in the configuration in force."),
        }
        for name, (value, doc) in gauges.items():
            yield GaugeMetricFamily(f"raftkv_{name}", doc, value=value)
        yield _histogram(
            "raftkv_fsync_seconds", "Time to persist one Ready batch.", stats.persist_latency
        )
        yield _histogram(
            "raftkv_apply_seconds", "Time to apply one batch of entries.", stats.apply_latency
        )
        yield from _runtime_metrics(stats)
        yield from self._store_metrics()
        if self.peer_stats is not None:
            family = CounterMetricFamily(
                "raftkv_peer_events", "Peer transport events.", labels=["event"]
            )
            for event, count in sorted(self.peer_stats().items()):
                family.add_metric([event], count)
            yield family


def metrics_registry(
    node: raftkv.Node, service: KVService, peer_stats: PeerStats | None = None
) -> CollectorRegistry:
    """raftkv's own metrics beside the standard process, platform and garbage-collector ones."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_NodeCollector(node, service, peer_stats))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
