"""``/v1/leases``: grant, keep alive, look up, revoke and list leases (raw ASGI).

Grants and revocations are proposals: any member takes them (Raft forwards them to the
leader). Keep-alives and time-to-live lookups read the leader's clock, so only the leader
answers them: elsewhere they raise ``NotLeader``, and the edge hands the request to the Quart
app, whose routes replay it on the leader (``LeaderForwarder``).

    POST   /v1/leases                {"ttl": s, "id"?: n}  -> 201 {"id", "ttl"}
    GET    /v1/leases                                      -> {"leases": [{"id"}, ...]}
    POST   /v1/leases/<id>/keepalive                       -> {"id", "ttl"}
    GET    /v1/leases/<id>?keys=false                      -> {"id", "ttl", "granted_ttl", "keys"}
    DELETE /v1/leases/<id>                                 -> {"id", "revision", "deleted"}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from quart import Response, request
from quart_trio import QuartTrio

import raftkv
from raftkv.kv import KVService, bytes_field

from .._forward import LeaderForwarder
from .._http import HTTPError, Reply, json_reply
from .._quart import as_response
from .._request import Query, Receive, Scope, lease_grant_request, no_query, parse_lease_id

__all__ = ["LEASES_PATH", "LeaseRoutes", "register_lease_forwarding"]

LEASES_PATH: Final = "/v1/leases"
_KEEPALIVE: Final = "keepalive"

Handler = Callable[[Scope, Receive], Awaitable[Reply]]


class LeaseRoutes:
    def __init__(self, service: KVService) -> None:
        self.service = service
        self.leases = service.leases

    def routes(self, path: str) -> tuple[dict[str, Handler], str, frozenset[str]] | None:
        """The handlers of ``path`` (under ``/v1/leases``) by method, its ``Allow``, and the
        methods only the leader answers (the Quart side replays those on the leader); None
        for a path that names nothing here. Grants, revocations and lists go through the log
        or a read barrier: without a leader they are refused (503), not replayed."""
        if path == LEASES_PATH:
            return {"GET": self.list, "POST": self.grant}, "GET, POST", frozenset()
        rest = path[len(LEASES_PATH) + 1 :].split("/")
        if len(rest) == 1 and rest[0]:
            text = rest[0]
            return (
                {
                    "GET": lambda scope, _: self.status(scope, parse_lease_id(text)),
                    "DELETE": lambda scope, _: self.revoke(scope, parse_lease_id(text)),
                },
                "DELETE, GET",
                frozenset(("GET",)),
            )
        if len(rest) == 2 and rest[0] and rest[1] == _KEEPALIVE:
            text = rest[0]
            return (
                {"POST": lambda scope, _: self.keepalive(scope, parse_lease_id(text))},
                "POST",
                frozenset(("POST",)),
            )
        return None

    async def grant(self, scope: Scope, receive: Receive) -> Reply:
        no_query(scope)
        asked = await lease_grant_request(scope, receive)
        try:
            self.leases.check_ttl(asked.ttl)
        except ValueError as exc:
            raise HTTPError(400, "bad ttl", str(exc)) from None
        granted = await self.leases.grant(asked.ttl, asked.id)
        return json_reply({"id": granted.lease, "ttl": granted.ttl}, 201)

    async def list(self, scope: Scope, receive: Receive) -> Reply:
        if Query.of(scope, "consistency").linearizable():
            await self.service.node.read_barrier()
        ids = self.service.store.lease_ids()
        return json_reply({"leases": [{"id": lease} for lease in ids]})

    async def keepalive(self, scope: Scope, lease: int) -> Reply:
        """Renew ``lease`` (leader only; one that has expired is gone)."""
        no_query(scope)
        ttl = await self.leases.keepalive(lease)
        return json_reply({"id": lease, "ttl": ttl})

    async def status(self, scope: Scope, lease: int) -> Reply:
        """The lease's remaining TTL by the leader's clock (leader only)."""
        with_keys = Query.of(scope, "keys").flag("keys", default=True)
        self.leases.check_leader()  # NotLeader before the barrier, if we do not lead
        await self.service.node.read_barrier()  # we still lead, and have applied what it knows
        status = self.leases.status(lease)
        body: dict[str, object] = {
            "id": lease,
            "ttl": status.ttl,
            "granted_ttl": status.granted_ttl,
        }
        if with_keys:
            body["keys"] = [bytes_field("key", key) for key in status.keys]
        return json_reply(body)

    async def revoke(self, scope: Scope, lease: int) -> Reply:
        no_query(scope)
        revoked = await self.leases.revoke(lease)
        return json_reply({"id": lease, "revision": revoked.revision, "deleted": revoked.deleted})


def register_lease_forwarding(
    app: QuartTrio, routes: LeaseRoutes, forwarder: LeaderForwarder
) -> None:
    """The Quart side of the leader-only routes: the edge sends them here when this node does
    not lead; they run again (leadership may have come here meanwhile) or go to the leader."""

    async def on_leader(handler: Handler) -> Response:
        try:
            return as_response(await handler(dict(request.scope), _no_body))
        except raftkv.NotLeader as exc:
            return await forwarder.forward(exc)

    @app.route(f"{LEASES_PATH}/<lease>/{_KEEPALIVE}", methods=["POST"])
    async def lease_keepalive(lease: str) -> Response:
        return await on_leader(lambda scope, _: routes.keepalive(scope, parse_lease_id(lease)))

    @app.route(f"{LEASES_PATH}/<lease>", methods=["GET"])
    async def lease_status(lease: str) -> Response:
        return await on_leader(lambda scope, _: routes.status(scope, parse_lease_id(lease)))


async def _no_body() -> dict[str, object]:
    raise AssertionError("the leader-only lease routes read no body")
