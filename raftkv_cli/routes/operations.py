"""``/-/health``, ``/-/ready``, ``/-/status`` and ``/-/metrics``: what operators and load
balancers ask a node (Quart)."""

from __future__ import annotations

from quart import Response
from quart_trio import QuartTrio

import raftkv
from raftkv.kv import KVService

from .._http import json_reply
from .._metrics import PeerStats, metrics_registry, render_metrics
from .._quart import as_response
from .members import members_json

__all__ = ["register_operations"]


def _json(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return as_response(json_reply(value, status, headers))


def register_operations(
    app: QuartTrio, service: KVService, peer_stats: PeerStats | None = None
) -> None:
    node = service.node
    registry = metrics_registry(node, service, peer_stats)

    @app.route("/-/health", methods=["GET"])
    async def health() -> Response:
        s = node.status()
        if s.removed:
            return _json({"health": "removed"}, 503)
        if s.leader is None:
            return _json({"health": "no leader"}, 503, {"Retry-After": "1"})
        if s.applied < s.commit:
            return _json({"health": "applying", "behind": s.commit - s.applied}, 503)
        return _json({"health": "ok"})

    @app.route("/-/ready", methods=["GET"])
    async def ready() -> Response:
        s = node.status()
        member = any(m.id == s.id for m in s.members)
        if s.removed or not member or s.leader is None:
            return _json({"ready": False}, 503, {"Retry-After": "1"})
        return _json({"ready": True})

    @app.route("/-/status", methods=["GET"])
    async def status() -> Response:
        return _json(status_json(node.status(), service))

    @app.route("/-/metrics", methods=["GET"])
    async def metrics() -> Response:
        body, content_type = render_metrics(registry)
        return Response(body, 200, content_type=content_type)


def status_json(s: raftkv.NodeStatus, service: KVService) -> dict[str, object]:
    return {
        "id": s.id,
        "version": raftkv.__version__,
        "role": s.role.value,
        "term": s.term,
        "leader": s.leader,
        "commit_index": s.commit,
        "applied_index": s.applied,
        "last_index": s.last_index,
        "removed": s.removed,
        "revision": service.store.revision,
        "compact_revision": service.store.compact_revision,
        "retained_revisions": service.store.retained_revisions,
        "keys": len(service.store),
        "watchers": service.watches.stats.open,
        **members_json(s),
    }
