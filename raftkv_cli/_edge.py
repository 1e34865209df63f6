"""The daemon's ASGI app: where every request comes in.

Key routes (the seed's ``/<key>`` and ``/v1/kv``) are most of the traffic and their logic is
small, so they are served here on the raw ASGI path (a bare ASGI route on Hypercorn serves about
1.6x what the same Quart-Trio route does), and so are the store's other routes (``/v1/txn``,
``/v1/compact``, ``/v1/leases``, and ``/v1/watch``, whose response streams); everything else goes
to the Quart app, and so does a leader-only lease request on a node that does not lead (Quart
replays it on the leader). Every response, from either side, leaves through ``_with_position``:
the one place that adds the raft position headers (``X-Raft-Index``, ``X-Raft-Term``). Every
request, for either side, first passes the ``Guard`` (who is asking, and may they) and then runs
``acting_for`` its user, so every command it proposes carries that identity.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import raftkv
from raftkv.kv import acting_for

from ._guard import Guard
from ._http import HTTPError, Reply, reply_for_exception, send_reply
from ._request import Receive, Scope, Send, check_headers, no_query
from .routes.kv import KV_PREFIX, KVRoutes
from .routes.leases import LEASES_PATH, LeaseRoutes
from .routes.seed import SeedKeys
from .routes.snapshot import SNAPSHOT_PATH, SnapshotRoute
from .routes.txn import TxnRoutes
from .routes.watch import DEFAULT_PROGRESS_INTERVAL, WATCH_PATH, WatchRoute

__all__ = ["ASGIApp", "Edge", "is_key_path"]

log = logging.getLogger("raftkv.http")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[Scope, Receive], Awaitable[Reply]]
StreamHandler = Callable[[Scope, Receive, Send], Awaitable[None]]

RESERVED_PREFIXES = ("/v1/", "/-/")
RESERVED_PATHS = ("/v1", "/-")
_KEY_METHODS = "GET, HEAD, PUT"
_MEMBER_METHODS = "GET, HEAD, PUT, POST, DELETE"
_KV_METHODS = "DELETE, GET, HEAD, PUT"


def is_key_path(path: str) -> bool:
    """Is ``path`` a seed key route (anything outside the reserved prefixes; ``/`` names the
    empty key, which is refused as such)?"""
    return path not in RESERVED_PATHS and not path.startswith(RESERVED_PREFIXES)


async def _no_key(scope: Scope, receive: Receive) -> Reply:
    raise HTTPError(404, "not found", "no key given: use /<key>")


class Edge:
    def __init__(
        self,
        node: raftkv.Node,
        kv: KVRoutes,
        leases: LeaseRoutes,
        fallback: ASGIApp,
        *,
        watch_progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
    ) -> None:
        self.node = node
        self.guard = Guard(kv.service)
        self.fallback = fallback
        self.watch = WatchRoute(kv.service, progress_interval=watch_progress_interval)
        self.snapshot = SnapshotRoute(kv.service)
        txn = TxnRoutes(kv.service)
        self.leases = leases
        seed = SeedKeys(kv)
        self._seed: dict[str, Handler] = {
            "GET": lambda scope, _: seed.get(scope),
            "HEAD": lambda scope, _: seed.get(scope),
            "PUT": seed.put,
        }
        self._kv: dict[str, Handler] = {
            "GET": lambda scope, _: kv.get(scope),
            "HEAD": lambda scope, _: kv.get(scope),
            "PUT": kv.put,
            "DELETE": lambda scope, _: kv.delete(scope),
        }
        # Reserved paths served here: their routes, by method.
        self._exact: dict[str, dict[str, Handler]] = {
            KV_PREFIX[:-1]: {
                "GET": lambda scope, _: kv.list(scope),
                "DELETE": lambda scope, _: kv.delete_prefix(scope),
            },
            "/v1/txn": {"POST": txn.txn},
            "/v1/compact": {"POST": kv.compact},
        }
        # The root names no key: nothing to read there, and a write to it is refused as a write
        # of the empty key (400).
        self._root: dict[str, Handler] = {"GET": _no_key, "HEAD": _no_key, "PUT": seed.put}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        send = self._with_position(send)
        try:
            check_headers(scope)
            user = await self.guard.admit(scope, receive)
        except Exception as exc:  # noqa: BLE001  # one request's answer (logged if unexpected)
            reply = reply_for_exception(exc, scope["method"], scope["path"])
            await send_reply(send, reply, head=scope["method"] == "HEAD")
            return
        with acting_for(user):
            await self._route(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/":
            await self._serve(self._root, _KEY_METHODS, scope, receive, send)
        elif is_key_path(path):
            if method in ("POST", "DELETE") and path[1:].isdigit():
                await self._serve_fallback(scope, receive, send)  # the seed's member routes
                return
            allow = _MEMBER_METHODS if path[1:].isdigit() else _KEY_METHODS
            await self._serve(self._seed, allow, scope, receive, send)
        elif path.startswith(KV_PREFIX):
            await self._serve(self._kv, _KV_METHODS, scope, receive, send)
        elif (routes := self._exact.get(path)) is not None:
            await self._serve(routes, ", ".join(sorted(routes)), scope, receive, send)
        elif path == WATCH_PATH:
            await self._serve_stream(self.watch, "GET", scope, receive, send)
        elif path == SNAPSHOT_PATH:
            await self._serve_stream(self.snapshot, "GET", scope, receive, send)
        elif path == LEASES_PATH or path.startswith(LEASES_PATH + "/"):
            await self._serve_leases(scope, receive, send)
        else:
            await self._serve_fallback(scope, receive, send)

    async def _serve_fallback(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The Quart routes (members, leadership, ``/-/``). Those outside ``/-/`` take no query
        parameters; the ``/-/`` ones, for probes and scrapers, ignore what they are given."""
        if not scope["path"].startswith("/-/"):
            try:
                no_query(scope)
            except HTTPError as exc:
                await send_reply(send, exc.reply(), head=scope["method"] == "HEAD")
                return
        await self.fallback(scope, receive, send)

    async def _serve(
        self,
        routes: dict[str, Handler],
        allow: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        not_leader: ASGIApp | None = None,
    ) -> None:
        """Answer with the route of the request's method; ``not_leader`` takes over a request
        that only the leader can answer when this node does not lead."""
        method = scope["method"]
        handler = routes.get(method)
        if handler is None:
            reply = _not_allowed(scope, allow)
        else:
            try:
                reply = await handler(scope, receive)
            except raftkv.NotLeader as exc:
                if not_leader is not None:
                    await not_leader(scope, receive, send)  # it replays the request on the leader
                    return
                reply = reply_for_exception(exc, method, scope["path"])
            except Exception as exc:  # noqa: BLE001  # one request's answer (logged if unexpected)
                reply = reply_for_exception(exc, method, scope["path"])
        await send_reply(send, reply, head=method == "HEAD")

    async def _serve_leases(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.leases.routes(scope["path"])
        if found is None:
            await self.fallback(scope, receive, send)  # Quart's JSON 404
            return
        routes, allow, leader_only = found
        # Only the routes the Quart side has: anything else refused NotLeader is a 503 here.
        replay = self.fallback if scope["method"] in leader_only else None
        await self._serve(routes, allow, scope, receive, send, not_leader=replay)

    async def _serve_stream(
        self, handler: StreamHandler, allow: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A route that writes its own (streaming) response: what it raises before the
        response starts is answered like any error; after, the response is cut short."""
        method = scope["method"]
        if method not in allow.split(", "):
            await send_reply(send, _not_allowed(scope, allow), head=method == "HEAD")
            return
        started = False

        async def send_tracked(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await handler(scope, receive, send_tracked)
        except Exception as exc:  # one request's answer, not a loop
            if started:
                log.exception("stream failed on %s %s", method, scope["path"])
                return
            await send_reply(send, reply_for_exception(exc, method, scope["path"]), head=False)

    def _with_position(self, send: Send) -> Send:
        node = self.node

        async def send_with_position(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                index, term = node.raft_position()
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-raft-index", str(index).encode()),
                    (b"x-raft-term", str(term).encode()),
                ]
            await send(message)

        return send_with_position


def _not_allowed(scope: Scope, allow: str) -> Reply:
    detail = f"{scope['method']} is not allowed on {scope['path']}"
    return HTTPError(405, "method not allowed", detail, {"allow": allow}).reply()
