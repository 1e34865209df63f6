"""The HTTP API's formats the client reads beside the key-value ones (those are in
``raftkv.kv``): members, the raft position headers, errors and ``Retry-After``.

Listing, ``GET /v1/kv?prefix=<bytes>&limit=<n>&after=<key>`` (query values percent-encoded;
``after`` pages past the last key of the previous page), answers JSON::

    {"kvs": [{"key": "a", "value": "1", "create_revision": 3, "mod_revision": 5, "version": 2}],
     "revision": 7, "more": false}

``more`` says whether more keys matched than ``limit`` let through. Errors are
``{"error": "...", "detail": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..kv import WireFormatError
from ._models import Member, Position

__all__ = [
    "Key",
    "key_bytes",
    "member_from_json",
    "members_from_json",
    "parse_error_body",
    "parse_error_field",
    "parse_position",
    "parse_retry_after",
    "to_bytes",
]

Key = str | bytes  # str is encoded as UTF-8


def to_bytes(data: Key, what: str = "key") -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes):
        return data
    raise TypeError(f"a {what} must be str or bytes, not {type(data).__name__}")


def key_bytes(key: Key) -> bytes:
    """A key argument as bytes; ``ValueError`` if it is empty."""
    data = to_bytes(key)
    if not data:
        raise ValueError("a key must not be empty")
    return data


def parse_position(headers: Mapping[str, str]) -> Position | None:
    try:
        return Position(int(headers["x-raft-index"]), int(headers["x-raft-term"]))
    except (KeyError, ValueError):
        return None


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by raftkv and is ignored)."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 3600 else None


def parse_error_body(content: bytes) -> tuple[str | None, str | None]:
    """``(error, detail)`` from a JSON error body; a plain body becomes the detail."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error, detail = body.get("error"), body.get("detail")
        return (
            error if isinstance(error, str) else None,
            detail if isinstance(detail, str) else None,
        )
    text = content.decode("utf-8", "replace").strip()
    return None, text[:500] or None


def parse_error_field(content: bytes, name: str) -> int | None:
    """An integer field of a JSON error body (``compact_revision``), if it is there."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    found = body.get(name) if isinstance(body, dict) else None
    return found if type(found) is int else None


def members_from_json(body: Any) -> tuple[Member, ...]:
    """The members in ``{"members": [...]}``, by id."""
    if not isinstance(body, dict) or not isinstance(body.get("members"), list):
        raise WireFormatError("expected {'members': [...]}")
    return tuple(sorted((member_from_json(m) for m in body["members"]), key=lambda m: m.id))


def member_from_json(obj: Any) -> Member:
    """A member from ``{"id", "peer_url", "client_url"?, "voter"?, "leader"?}``."""
    if not isinstance(obj, dict):
        raise WireFormatError("expected a JSON object for a member")
    member_id, peer_url = obj.get("id"), obj.get("peer_url")
    client_url, voter, leader = obj.get("client_url"), obj.get("voter", True), obj.get("leader")
    if type(member_id) is not int or member_id < 1:
        raise WireFormatError("expected a member 'id' as an integer >= 1")
    if not isinstance(peer_url, str):
        raise WireFormatError("expected a member 'peer_url' as a string")
    if client_url is not None and not isinstance(client_url, str):
        raise WireFormatError("expected a member 'client_url' as a string")
    if type(voter) is not bool or (leader is not None and type(leader) is not bool):
        raise WireFormatError("expected a member's 'voter' and 'leader' as booleans")
    return Member(member_id, peer_url, client_url, voter, bool(leader))
