"""The HTTP API's wire formats, shared by the client and the server.

Keys in URLs: ``/v1/kv/<key>`` carries the key's bytes percent-encoded (``encode_key_path``);
``/`` stays as is, so ``a/b`` reads naturally, but a segment made only of dots is encoded
(``%2E``) so that no client library or proxy collapses it as a relative path.

Listing, ``GET /v1/kv?prefix=<bytes>&limit=<n>&after=<key>`` (query values percent-encoded;
``after`` pages past the last key of the previous page), answers JSON::

    {"kvs": [{"key": "a", "value": "1", "create_revision": 3, "mod_revision": 5, "version": 2}],
     "revision": 7, "more": false}

``key`` and ``value`` are the bytes as a string when they are valid UTF-8; otherwise the object
carries ``key_b64`` / ``value_b64`` (standard base64, padded) instead. Exactly one of each
pair is present. ``more`` says whether more keys matched than ``limit`` let through.

Revisions travel as entity tags: ``ETag: "42"``; ``If-Match: "42"`` asks for compare-and-swap on
mod revision 42 and ``If-None-Match: *`` for create-only. Errors are ``{"error": "...",
"detail": "..."}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .._kv import KeyValue
from ._models import Member, Position

__all__ = [
    "WireFormatError",
    "bytes_field",
    "encode_etag",
    "encode_key_path",
    "encode_query_bytes",
    "key_value_from_json",
    "key_value_to_json",
    "member_from_json",
    "members_from_json",
    "parse_error_body",
    "parse_etag",
    "parse_position",
    "parse_retry_after",
    "range_from_json",
]


class WireFormatError(ValueError):
    """A body that is not in the shape the API promises."""


_ETAG = re.compile(r'\s*(?:W/)?"(\d{1,19})"\s*')


def encode_key_path(key: bytes) -> str:
    """The key as it goes after ``/v1/kv/``."""
    segments = []
    for segment in key.split(b"/"):
        if segment and segment.strip(b".") == b"":
            segments.append("%2E" * len(segment))
        else:
            segments.append(quote(segment, safe=""))
    return "/".join(segments)


def encode_query_bytes(value: bytes) -> str:
    """Bytes as a query-string value, percent-encoded."""
    return quote(value, safe="")


def encode_etag(revision: int) -> str:
    return f'"{revision}"'


def parse_etag(value: str | None) -> int | None:
    """The revision in an ``ETag`` header; None when there is none or it is not a revision."""
    m = _ETAG.fullmatch(value) if value is not None else None
    return int(m.group(1)) if m else None


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


def bytes_field(name: str, data: bytes) -> dict[str, str]:
    """``{name: text}`` for UTF-8 bytes, else ``{name_b64: base64}``."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {name + "_b64": base64.b64encode(data).decode("ascii")}


def _bytes_from_json(obj: Mapping[str, Any], name: str) -> bytes:
    text, b64 = obj.get(name), obj.get(name + "_b64")
    if isinstance(text, str) and b64 is None:
        return text.encode("utf-8")
    if isinstance(b64, str) and text is None:
        try:
            return base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise WireFormatError(f"bad base64 in {name}_b64") from None
    raise WireFormatError(f"expected exactly one of {name!r} and {name + '_b64'!r} as a string")


def key_value_to_json(kv: KeyValue) -> dict[str, Any]:
    """One entry of a listing's ``kvs``."""
    return {
        **bytes_field("key", kv.key),
        **bytes_field("value", kv.value),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
    }


def _int(obj: Mapping[str, Any], name: str) -> int:
    value = obj.get(name)
    if type(value) is not int or value < 0:
        raise WireFormatError(f"expected {name!r} as an integer >= 0")
    return value


def key_value_from_json(obj: Any) -> KeyValue:
    """The inverse of ``key_value_to_json``; ``WireFormatError`` if ``obj`` is not one."""
    if not isinstance(obj, dict):
        raise WireFormatError("expected a JSON object for a key-value entry")
    return KeyValue(
        _bytes_from_json(obj, "key"),
        _bytes_from_json(obj, "value"),
        _int(obj, "create_revision"),
        _int(obj, "mod_revision"),
        _int(obj, "version"),
    )


def range_from_json(body: Any) -> tuple[tuple[KeyValue, ...], int, bool]:
    """``(kvs, revision, more)`` from a listing's body."""
    if not isinstance(body, dict) or not isinstance(body.get("kvs"), list):
        raise WireFormatError("expected {'kvs': [...], 'revision': n, 'more': bool}")
    kvs = tuple(key_value_from_json(item) for item in body["kvs"])
    revision, more = body.get("revision"), body.get("more", False)
    if type(revision) is not int or type(more) is not bool:
        raise WireFormatError("expected 'revision' as an integer and 'more' as a boolean")
    return kvs, revision, more


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
