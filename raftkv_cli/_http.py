"""HTTP plumbing shared by the raw ASGI routes and the Quart routes: replies and errors.

Every error is JSON ``{"error": ..., "detail": ...}``; refusals a retry can cure carry
``Retry-After``. The mapping from raftkv's exceptions to statuses lives here and only here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import raftkv
from raftkv.kv import InvalidTxn

__all__ = [
    "HTTPError",
    "Reply",
    "error_for_exception",
    "json_body",
    "json_reply",
    "reply_for_exception",
    "send_reply",
]

log = logging.getLogger("raftkv.http")

JSON = "application/json"


def json_body(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


@dataclass(slots=True)
class Reply:
    """A whole response, before it is written by the raw path or wrapped by Quart."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json_body(value), {**(headers or {}), "content-type": JSON})


@dataclass(slots=True)
class HTTPError(Exception):
    status: int
    error: str
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)  # more fields for the JSON body

    def body(self) -> bytes:
        return json_body({"error": self.error, "detail": self.detail, **self.extra})

    def reply(self) -> Reply:
        return Reply(self.status, self.body(), {**self.headers, "content-type": JSON})


async def send_reply(
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]], reply: Reply, *, head: bool
) -> None:
    """Write ``reply`` as an ASGI response (no body for HEAD, but its length)."""
    headers = [(b"content-length", str(len(reply.body)).encode())]
    headers.extend((k.lower().encode(), v.encode()) for k, v in reply.headers.items())
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else reply.body})


def error_for_exception(exc: BaseException) -> HTTPError | None:
    """The HTTP answer for an exception raftkv raises on purpose; None for anything else."""
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, raftkv.InvalidKey):
        return HTTPError(400, "invalid key", str(exc))
    if isinstance(exc, raftkv.Compacted):
        extra: dict[str, object] = {"compact_revision": exc.compact_revision}
        return HTTPError(410, "revision compacted", str(exc), extra=extra)
    if isinstance(exc, raftkv.FutureRevision):
        extra = {"current_revision": exc.current}
        return HTTPError(400, "future revision", str(exc), extra=extra)
    if isinstance(exc, InvalidTxn):
        return HTTPError(400, "invalid transaction", str(exc))
    if isinstance(exc, raftkv.ValueTooLarge):
        return HTTPError(413, "value too large", str(exc))
    if isinstance(exc, raftkv.UnknownLease):
        return HTTPError(404, "lease not found", str(exc), extra={"id": exc.lease})
    if isinstance(exc, raftkv.LeaseIdTaken):
        return HTTPError(409, "lease exists", str(exc), extra={"id": exc.lease})
    if isinstance(exc, raftkv.ConfChangeRefused):
        return HTTPError(409, "membership change refused", str(exc))
    if isinstance(exc, raftkv.NotLeader):
        detail = str(exc)
        return HTTPError(503, "no leader", detail, {"Retry-After": "1"})
    if isinstance(exc, raftkv.ProposalDropped):
        return HTTPError(503, "unavailable", str(exc), {"Retry-After": "1"})
    if isinstance(exc, raftkv.OutcomeUnknown) and isinstance(exc.__cause__, raftkv.NodeFailed):
        return HTTPError(
            507,
            "storage failed",
            f"{exc.__cause__}. The request may or may not have been applied; read it back "
            "from another member before retrying.",
        )
    if isinstance(exc, raftkv.NodeFailed):
        return HTTPError(503, "node failed", str(exc), {"Retry-After": "1"})
    if isinstance(exc, raftkv.OutcomeUnknown):
        return HTTPError(
            504,
            "outcome unknown",
            f"{exc}. The request may or may not have been applied; read before retrying.",
        )
    if isinstance(exc, raftkv.NodeClosed):
        return HTTPError(503, "shutting down", str(exc), {"Retry-After": "1"})
    return None


def reply_for_exception(exc: Exception, method: str, path: str) -> Reply:
    """The error reply for ``exc``; an exception raftkv does not raise on purpose is logged and
    answered 500."""
    error = error_for_exception(exc)
    if error is None:
        log.exception("internal error on %s %s", method, path, exc_info=exc)
        error = HTTPError(500, "internal error", "see the server log")
    return error.reply()
