"""HTTP plumbing shared by the raw ASGI fast path and the Quart routes: errors and headers.

Every error is JSON ``{"error": ..., "detail": ...}``; refusals a retry can cure carry
``Retry-After``. The mapping from raftkv's exceptions to statuses lives here and only here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import raftkv
from raftkv._kv import InvalidKey, ValueTooLarge

__all__ = ["HTTPError", "error_for_exception", "json_body"]


@dataclass(slots=True)
class HTTPError(Exception):
    status: int
    error: str
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return json_body({"error": self.error, "detail": self.detail})


def json_body(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def error_for_exception(exc: BaseException) -> HTTPError | None:
    """The HTTP answer for an exception raftkv raises on purpose; None for anything else."""
    if isinstance(exc, HTTPError):
        return exc
    if isinstance(exc, InvalidKey):
        return HTTPError(400, "invalid key", str(exc))
    if isinstance(exc, ValueTooLarge):
        return HTTPError(413, "value too large", str(exc))
    if isinstance(exc, raftkv.ConfChangeRefused):
        return HTTPError(409, "membership change refused", str(exc))
    if isinstance(exc, raftkv.NotLeader):
        detail = str(exc)
        return HTTPError(503, "no leader", detail, {"Retry-After": "1"})
    if isinstance(exc, raftkv.ProposalDropped):
        return HTTPError(503, "unavailable", str(exc), {"Retry-After": "1"})
    if isinstance(exc, raftkv.OutcomeUnknown):
        return HTTPError(
            504,
            "outcome unknown",
            f"{exc}. The request may or may not have been applied; read before retrying.",
        )
    if isinstance(exc, raftkv.NodeClosed):
        return HTTPError(503, "shutting down", str(exc), {"Retry-After": "1"})
    return None
