"""The seed's hot routes as a bare ASGI app: ``PUT /<key>`` and ``GET /<key>``.

They are most of the traffic and their logic is tiny, so they skip the framework (measured: a
bare ASGI app on Hypercorn serves about 1.6x what the same Quart-Trio route does). Everything else,
including these paths with other methods, goes to the Quart app, which owns the 405 answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qs, unquote_to_bytes

from raftkv._kv import CompareFailed, check_value_size

from ._http import HTTPError, error_for_exception
from ._service import KVService

__all__ = ["FastPath", "is_key_path", "raw_key", "read_body"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RESERVED_PREFIXES = ("/v1/", "/-/")
RESERVED_PATHS = ("/v1", "/-", "/")


def is_key_path(path: str) -> bool:
    """Is ``path`` a seed key route (anything outside the reserved prefixes)?"""
    return path not in RESERVED_PATHS and not path.startswith(RESERVED_PREFIXES)


class FastPath:
    def __init__(self, service: KVService, fallback: ASGIApp) -> None:
        self.service = service
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method in ("GET", "PUT", "HEAD") and is_key_path(scope["path"]):
                await self._serve(scope, receive, send, method)
                return
        await self.fallback(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        key = raw_key(scope, "/")
        try:
            if method == "PUT":
                status, body, extra = await self._put(scope, receive, key)
            else:
                status, body, extra = await self._get(scope, key)
        except Exception as exc:
            error = error_for_exception(exc)
            if error is None:
                raise
            status, body, extra = error.status, error.body(), error.headers
            extra = {**extra, "content-type": "application/json"}
        await self._respond(send, status, body, extra, head=method == "HEAD")

    async def _put(
        self, scope: Scope, receive: Receive, key: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        limit = self.service.limits.max_value_bytes
        value = await read_body(scope, receive, limit)
        result = await self.service.put(key, value)
        if isinstance(result, CompareFailed):  # pragma: no cover - no condition was given
            raise HTTPError(412, "precondition failed")
        return 204, b"", {"etag": f'"{result.revision}"'}

    async def _get(self, scope: Scope, key: bytes) -> tuple[int, bytes, dict[str, str]]:
        linearizable = _consistency(scope.get("query_string", b""))
        kv = await self.service.get(key, linearizable=linearizable)
        if kv is None:
            raise HTTPError(404, "key not found", key.decode("utf-8", "replace"))
        return (
            200,
            kv.value,
            {"content-type": "application/octet-stream", "etag": f'"{kv.mod_revision}"'},
        )

    async def _respond(
        self, send: Send, status: int, body: bytes, extra: dict[str, str], *, head: bool
    ) -> None:
        index, term = self.service.node.raft_position()
        headers = [
            (b"x-raft-index", str(index).encode()),
            (b"x-raft-term", str(term).encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})


def raw_key(scope: Mapping[str, Any], prefix: str) -> bytes:
    """The key under ``prefix`` exactly as the client percent-encoded it (any bytes)."""
    raw = scope.get("raw_path")
    if raw is None:  # servers that omit raw_path: the decoded path is all we have
        return str(scope["path"])[len(prefix) :].encode("utf-8", "surrogateescape")
    return unquote_to_bytes(bytes(raw).split(b"?", 1)[0])[len(prefix) :]


def _consistency(query_string: bytes) -> bool:
    """True for a linearizable read (the default), False for ?consistency=serializable."""
    if not query_string:
        return True
    values = parse_qs(query_string.decode("latin-1")).get("consistency", ["linearizable"])
    if values[-1] == "serializable":
        return False
    if values[-1] == "linearizable":
        return True
    raise HTTPError(400, "bad consistency", "use consistency=linearizable or serializable")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` before reading it whole."""
    declared = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise HTTPError(400, "bad content-length") from None
            check_value_size(declared, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        if size == declared and chunks:
            # All the declared bytes are here (the server enforces the framing): skip waiting
            # for the empty end-of-body message, one scheduling pass per write.
            return b"".join(chunks)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        check_value_size(size, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
