"""The daemon's ASGI app: where every request comes in.

Key routes (the seed's ``/<key>`` and ``/v1/kv``) are most of the traffic and their logic is
small, so they are served here on the raw ASGI path (a bare ASGI route on Hypercorn serves about
1.6x what the same Quart-Trio route does); everything else goes to the Quart app. Every
response, from either side, leaves through ``_with_position``: the one place that adds the raft
position headers (``X-Raft-Index``, ``X-Raft-Term``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import raftkv

from ._http import HTTPError, Reply, error_for_exception, send_reply
from ._request import Receive, Scope, Send
from .routes.kv import KV_PREFIX, KVRoutes
from .routes.seed import SeedKeys

__all__ = ["ASGIApp", "Edge", "is_key_path"]

log = logging.getLogger("raftkv.http")

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[Scope, Receive], Awaitable[Reply]]

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
    def __init__(self, node: raftkv.Node, kv: KVRoutes, fallback: ASGIApp) -> None:
        self.node = node
        self.fallback = fallback
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
        self._kv_root: dict[str, Handler] = {"GET": lambda scope, _: kv.list(scope)}
        # The root names no key: nothing to read there, and a write to it is refused as a write
        # of the empty key (400).
        self._root: dict[str, Handler] = {"GET": _no_key, "HEAD": _no_key, "PUT": seed.put}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        send = self._with_position(send)
        path, method = scope["path"], scope["method"]
        if path == "/":
            await self._serve(self._root, _KEY_METHODS, scope, receive, send)
        elif is_key_path(path):
            if method in ("POST", "DELETE") and path[1:].isdigit():
                await self.fallback(scope, receive, send)  # the seed's member routes
                return
            allow = _MEMBER_METHODS if path[1:].isdigit() else _KEY_METHODS
            await self._serve(self._seed, allow, scope, receive, send)
        elif path.startswith(KV_PREFIX):
            await self._serve(self._kv, _KV_METHODS, scope, receive, send)
        elif path == KV_PREFIX[:-1]:
            await self._serve(self._kv_root, "GET", scope, receive, send)
        else:
            await self.fallback(scope, receive, send)

    async def _serve(
        self, routes: dict[str, Handler], allow: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        method = scope["method"]
        handler = routes.get(method)
        if handler is None:
            detail = f"{method} is not allowed on {scope['path']}"
            reply = HTTPError(405, "method not allowed", detail, {"allow": allow}).reply()
        else:
            try:
                reply = await handler(scope, receive)
            except Exception as exc:  # one request's answer, not a loop
                error = error_for_exception(exc)
                if error is None:
                    log.exception("internal error on %s %s", method, scope["path"])
                    error = HTTPError(500, "internal error", "see the server log")
                reply = error.reply()
        await send_reply(send, reply, head=method == "HEAD")

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
