"""Each API call as data: how to send it and what its answer means (no I/O here).

A ``Call`` names the request and carries ``finish``, which turns the final response into the
result or raises the ``ClientError`` it stands for. The drivers (``Client``, ``AsyncClient``)
only send, retry (``_retry``) and finish.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from ..kv import (
    WireFormatError,
    encode_etag,
    encode_key_path,
    encode_query_bytes,
    parse_etag,
    range_from_json,
)
from ._errors import (
    BadRequest,
    Conflict,
    KeyNotFound,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    Unavailable,
)
from ._models import DeleteResponse, Member, PutResponse, RangeResponse, Value
from ._retry import error_message
from ._wire import members_from_json, parse_position, parse_retry_after

__all__ = [
    "Call",
    "Key",
    "add_member",
    "delete",
    "get",
    "get_prefix",
    "members",
    "put",
    "raise_for_status",
    "remove_member",
    "status",
    "to_bytes",
    "transfer_leadership",
]

T = TypeVar("T")
Key = str | bytes  # str is encoded as UTF-8

_JSON = {"content-type": "application/json"}


def to_bytes(data: Key, what: str = "key") -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes):
        return data
    raise TypeError(f"a {what} must be str or bytes, not {type(data).__name__}")


def _key(key: Key) -> bytes:
    data = to_bytes(key)
    if not data:
        raise ValueError("a key must not be empty")
    return data


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    target: str  # path and query, encoded
    finish: Callable[[httpx.Response, str], T]  # (final response, its endpoint) -> result
    idempotent: bool  # safe to send again after an unclear failure (reads)
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


# -- answers --------------------------------------------------------------------------------------


def raise_for_status(
    response: httpx.Response,
    endpoint: str,
    *,
    idempotent: bool,
    not_found: type[NotFound] = NotFound,
) -> None:
    """Raise the ``ClientError`` an unsuccessful response stands for."""
    status = response.status_code
    if 200 <= status < 300:
        return
    message, error, detail = error_message(response, endpoint)
    kwargs: dict[str, Any] = {
        "status": status,
        "error": error,
        "detail": detail,
        "endpoint": endpoint,
    }
    if status == 404:
        raise not_found(message, **kwargs)
    if status == 412:
        exc = PreconditionFailed(message, **kwargs)
        exc.mod_revision = parse_etag(response.headers.get("etag"))
        raise exc
    if status == 413:
        raise PayloadTooLarge(message, **kwargs)
    if status in (400, 405, 411, 414, 415, 422, 431):
        raise BadRequest(message, **kwargs)
    if status == 409:
        raise Conflict(message, **kwargs)
    if status in (429, 503) or (status == 504 and idempotent):
        exc2 = Unavailable(message, **kwargs)
        exc2.retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise exc2
    if status in (500, 502, 504) and not idempotent:
        raise OutcomeUnknown(f"outcome unknown: {message}", **kwargs)
    raise ServerError(message, **kwargs)


def _json_body(response: httpx.Response, endpoint: str) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        raise ServerError(
            f"malformed JSON from {endpoint}", status=response.status_code, endpoint=endpoint
        ) from None


def _malformed(response: httpx.Response, endpoint: str, exc: Exception) -> ServerError:
    return ServerError(
        f"unexpected answer from {endpoint}: {exc}", status=response.status_code, endpoint=endpoint
    )


# -- keys ---------------------------------------------------------------------------------------


def get(key: Key, *, serializable: bool = False) -> Call[Value]:
    raw = _key(key)

    def finish(response: httpx.Response, endpoint: str) -> Value:
        raise_for_status(response, endpoint, idempotent=True, not_found=KeyNotFound)
        return Value(
            raw,
            response.content,
            parse_etag(response.headers.get("etag")),
            parse_position(response.headers),
        )

    query = "?consistency=serializable" if serializable else ""
    return Call("GET", f"/v1/kv/{encode_key_path(raw)}{query}", finish, idempotent=True)


def _condition(if_revision: int | None) -> dict[str, str]:
    if if_revision is None:
        return {}
    if type(if_revision) is not int or if_revision < 0:
        raise ValueError(f"if_revision must be an integer >= 0, not {if_revision!r}")
    if if_revision == 0:
        return {"if-none-match": "*"}
    return {"if-match": encode_etag(if_revision)}


def put(key: Key, value: Key, *, if_revision: int | None = None) -> Call[PutResponse]:
    raw = _key(key)

    def finish(response: httpx.Response, endpoint: str) -> PutResponse:
        raise_for_status(response, endpoint, idempotent=False)
        return PutResponse(
            parse_etag(response.headers.get("etag")), parse_position(response.headers)
        )

    return Call(
        "PUT",
        f"/v1/kv/{encode_key_path(raw)}",
        finish,
        idempotent=False,
        content=to_bytes(value, "value"),
        headers=_condition(if_revision),
    )


def delete(key: Key, *, if_revision: int | None = None) -> Call[DeleteResponse]:
    raw = _key(key)

    def finish(response: httpx.Response, endpoint: str) -> DeleteResponse:
        raise_for_status(response, endpoint, idempotent=False, not_found=KeyNotFound)
        revision = None
        if response.content:
            body = _json_body(response, endpoint)
            if isinstance(body, dict) and type(body.get("revision")) is int:
                revision = body["revision"]
        return DeleteResponse(revision, parse_position(response.headers))

    return Call(
        "DELETE",
        f"/v1/kv/{encode_key_path(raw)}",
        finish,
        idempotent=False,
        headers=_condition(if_revision),
    )


def get_prefix(
    prefix: Key = b"",
    *,
    limit: int | None = None,
    after: Key | None = None,
    serializable: bool = False,
) -> Call[RangeResponse]:
    query = [("prefix", encode_query_bytes(to_bytes(prefix, "prefix")))]
    if limit is not None:
        if type(limit) is not int or limit < 1:
            raise ValueError(f"limit must be an integer >= 1, not {limit!r}")
        query.append(("limit", str(limit)))
    if after is not None:
        query.append(("after", encode_query_bytes(to_bytes(after, "key"))))
    if serializable:
        query.append(("consistency", "serializable"))

    def finish(response: httpx.Response, endpoint: str) -> RangeResponse:
        raise_for_status(response, endpoint, idempotent=True)
        try:
            kvs, revision, more = range_from_json(_json_body(response, endpoint))
        except WireFormatError as exc:
            raise _malformed(response, endpoint, exc) from None
        return RangeResponse(kvs, revision, more, parse_position(response.headers))

    target = "/v1/kv?" + "&".join(f"{name}={value}" for name, value in query)
    return Call("GET", target, finish, idempotent=True)


# -- cluster ------------------------------------------------------------------------------------


def _members(response: httpx.Response, endpoint: str, *, idempotent: bool) -> tuple[Member, ...]:
    raise_for_status(response, endpoint, idempotent=idempotent)
    if not response.content:
        return ()
    try:
        return members_from_json(_json_body(response, endpoint))
    except WireFormatError as exc:
        raise _malformed(response, endpoint, exc) from None


def members() -> Call[tuple[Member, ...]]:
    return Call(
        "GET",
        "/v1/members",
        lambda response, endpoint: _members(response, endpoint, idempotent=True),
        idempotent=True,
    )


def _member_id(member_id: int) -> int:
    if type(member_id) is not int or member_id < 1:
        raise ValueError(f"a member id is an integer >= 1, not {member_id!r}")
    return member_id


def add_member(member_id: int, peer_url: str) -> Call[tuple[Member, ...]]:
    body = {"id": _member_id(member_id), "peer_url": peer_url}
    return Call(
        "POST",
        "/v1/members",
        lambda response, endpoint: _members(response, endpoint, idempotent=False),
        idempotent=False,
        content=json.dumps(body).encode(),
        headers=_JSON,
    )


def remove_member(member_id: int) -> Call[tuple[Member, ...]]:
    return Call(
        "DELETE",
        f"/v1/members/{_member_id(member_id)}",
        lambda response, endpoint: _members(response, endpoint, idempotent=False),
        idempotent=False,
    )


def transfer_leadership(member_id: int) -> Call[None]:
    def finish(response: httpx.Response, endpoint: str) -> None:
        raise_for_status(response, endpoint, idempotent=False)

    return Call(
        "POST",
        "/v1/leader",
        finish,
        idempotent=False,
        content=json.dumps({"id": _member_id(member_id)}).encode(),
        headers=_JSON,
    )


def status() -> Call[dict[str, Any]]:
    def finish(response: httpx.Response, endpoint: str) -> dict[str, Any]:
        raise_for_status(response, endpoint, idempotent=True)
        body = _json_body(response, endpoint)
        if not isinstance(body, dict):
            raise _malformed(response, endpoint, WireFormatError("expected a JSON object"))
        return body

    return Call("GET", "/-/status", finish, idempotent=True)
