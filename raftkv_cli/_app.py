"""``create_app``: the daemon's HTTP API (docs/api.md), assembled from its routes.

Seed routes stay at the root (``/<key>`` PUT/GET, ``/<id>`` POST/DELETE for members);
everything else lives under ``/v1/`` and ``/-/`` so that any other path can be a key.
"""

from __future__ import annotations

import httpx

from raftkv.kv import KVService

from ._edge import ASGIApp, Edge
from ._forward import LeaderForwarder
from ._metrics import PeerStats
from ._quart import new_quart_app
from .routes.kv import KVRoutes
from .routes.leases import LeaseRoutes, register_lease_forwarding
from .routes.members import Members, register_members
from .routes.operations import register_operations
from .routes.seed import register_seed_members
from .routes.watch import DEFAULT_PROGRESS_INTERVAL

__all__ = ["create_app"]


def create_app(
    service: KVService,
    *,
    forward_client: httpx.AsyncClient | None = None,
    peer_stats: PeerStats | None = None,
    watch_progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
) -> ASGIApp:
    """The daemon's ASGI app: key routes on the raw path, the rest in Quart.
    ``watch_progress_interval``: the longest a watch stream stays silent (seconds)."""
    node = service.node
    app = new_quart_app(service.limits.max_value_bytes)
    forwarder = LeaderForwarder(node, forward_client)
    members = Members(node, forwarder)
    leases = LeaseRoutes(service)
    register_lease_forwarding(app, leases, forwarder)
    register_seed_members(app, members)
    register_members(app, members)
    register_operations(app, service, peer_stats)
    return Edge(
        node,
        KVRoutes(service),
        leases,
        app,  # type: ignore[arg-type]  # Quart types its ASGI args
        watch_progress_interval=watch_progress_interval,
    )
