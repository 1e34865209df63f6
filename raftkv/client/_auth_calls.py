"""The ``/v1/auth`` calls (docs/security.md): each answers the server's JSON object."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from ..kv import bytes_field
from ._calls import Call, raise_for_status
from ._wire import Key, key_bytes

__all__ = [
    "auth_change",
    "auth_read",
    "permission_body",
]

_PERMS = ("read", "write", "readwrite")


def _name(name: str) -> str:
    return quote(name, safe="")


def _object(response: httpx.Response, endpoint: str) -> dict[str, Any]:
    raise_for_status(response, endpoint, idempotent=True)
    body = response.json() if response.content else {}
    return body if isinstance(body, dict) else {"answer": body}


def auth_read(*path: str) -> Call[dict[str, Any]]:
    """``GET /v1/auth/<path...>`` (each part percent-encoded)."""
    target = "/v1/auth/" + "/".join(_name(p) for p in path)
    return Call("GET", target, _object, idempotent=True)


def auth_change(
    method: str, *path: str, body: dict[str, Any] | None = None
) -> Call[dict[str, Any]]:
    """A change under ``/v1/auth``: never retried blindly (its outcome may be unknown)."""
    target = "/v1/auth/" + "/".join(_name(p) for p in path)

    def finish(response: httpx.Response, endpoint: str) -> dict[str, Any]:
        raise_for_status(response, endpoint, idempotent=False)
        return _object(response, endpoint)

    content = None if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"content-type": "application/json"}
    return Call(method, target, finish, idempotent=False, content=content, headers=headers)


def permission_body(key: Key, *, prefix: bool, perm: str | None = None) -> dict[str, Any]:
    if perm is not None and perm not in _PERMS:
        raise ValueError(f"perm is one of {', '.join(_PERMS)}, not {perm!r}")
    body: dict[str, Any] = {**bytes_field("key", key_bytes(key)), "prefix": prefix}
    return body if perm is None else {"perm": perm, **body}
