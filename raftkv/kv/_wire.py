"""The key-value store's formats on the HTTP API, shared by the daemon and the client.

Keys in URLs: ``/v1/kv/<key>`` carries the key's bytes percent-encoded (``encode_key_path``);
``/`` stays as is, so ``a/b`` reads naturally, but a segment made only of dots is encoded
(``%2E``) so that no client library or proxy collapses it as a relative path.

A key-value in JSON (listings, transactions, watch events)::

    {"key": "a", "value": "1", "create_revision": 3, "mod_revision": 5, "version": 2}

(and ``"lease": id`` for a key attached to a lease). ``key`` and ``value`` are the bytes as a
string when they are valid UTF-8; otherwise the object carries ``key_b64`` / ``value_b64``
(standard base64, padded) instead. Exactly one of each pair is present.

Revisions travel as entity tags: ``ETag: "42"``; ``If-Match: "42"`` asks for compare-and-swap on
mod revision 42 and ``If-None-Match: *`` for create-only.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ._results import KeyValue

__all__ = [
    "WireFormatError",
    "bytes_field",
    "bytes_from_json",
    "encode_etag",
    "encode_key_path",
    "encode_query_bytes",
    "key_value_from_json",
    "key_value_to_json",
    "parse_etag",
    "parse_revision_tag",
    "range_from_json",
]


class WireFormatError(ValueError):
    """A body or header that is not in the shape the API promises."""


_ETAG = re.compile(r'\s*(?:W/)?"(\d{1,19})"\s*')
_STRONG_ETAG = re.compile(r'\s*"(\d{1,19})"\s*')


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
    """The entity tag of a revision: ``"42"``."""
    return f'"{revision}"'


def parse_etag(value: str | None) -> int | None:
    """The revision in an ``ETag`` header; None when there is none or it is not a revision."""
    m = _ETAG.fullmatch(value) if value is not None else None
    return int(m.group(1)) if m else None


def parse_revision_tag(value: str) -> int:
    """The revision a condition header (``If-Match: "42"``) names; ``WireFormatError`` saying
    what is wrong otherwise (weak tags name no revision)."""
    m = _STRONG_ETAG.fullmatch(value)
    if m is None:
        if value.strip().startswith("W/"):
            raise WireFormatError("weak ETags do not name a revision")
        raise WireFormatError(f"expected a revision ETag like '\"42\"', got {value!r}")
    return int(m.group(1))


def bytes_field(name: str, data: bytes) -> dict[str, str]:
    """``{name: text}`` for UTF-8 bytes, else ``{name_b64: base64}``."""
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {name + "_b64": base64.b64encode(data).decode("ascii")}


def bytes_from_json(obj: Mapping[str, Any], name: str) -> bytes:
    """The inverse of ``bytes_field``: exactly one of ``name`` and ``name_b64`` must be there."""
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
    """One key-value as JSON (``lease`` only for a key attached to one)."""
    out = {
        **bytes_field("key", kv.key),
        **bytes_field("value", kv.value),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
    }
    if kv.lease:
        out["lease"] = kv.lease
    return out


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
        bytes_from_json(obj, "key"),
        bytes_from_json(obj, "value"),
        _int(obj, "create_revision"),
        _int(obj, "mod_revision"),
        _int(obj, "version"),
        _int(obj, "lease") if "lease" in obj else 0,
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
