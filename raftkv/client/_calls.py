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
    TxnCommand,
    WireFormatError,
    bytes_from_json,
    encode_etag,
    encode_key_path,
    encode_query_bytes,
    parse_etag,
    range_from_json,
    txn_to_json,
)
from ._errors import (
    BadRequest,
    Compacted,
    Conflict,
    FutureRevision,
    KeyNotFound,
    LeaseNotFound,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    Unavailable,
)
from ._models import (
    CompactResponse,
    DeleteResponse,
    LeaseGrant,
    LeaseRevoked,
    LeaseStatus,
    Member,
    PutResponse,
    RangeResponse,
    TxnResponse,
    Value,
)
from ._retry import error_message
from ._txn import is_read_only, txn_responses_from_json
from ._wire import (
    Key,
    key_bytes,
    members_from_json,
    parse_error_body,
    parse_error_field,
    parse_position,
    parse_retry_after,
    to_bytes,
)

__all__ = [
    "Call",
    "Key",
    "add_member",
    "check_revision",
    "compact",
    "delete",
    "get",
    "get_prefix",
    "grant_lease",
    "keepalive",
    "lease_status",
    "leases",
    "members",
    "put",
    "raise_for_status",
    "remove_member",
    "revoke_lease",
    "status",
    "to_bytes",
    "transfer_leadership",
    "txn",
]

T = TypeVar("T")

_JSON = {"content-type": "application/json"}


def check_revision(revision: int | None, what: str = "revision") -> int | None:
    """``revision`` if it is None or an integer >= 1; ``ValueError`` otherwise."""
    if revision is not None and (type(revision) is not int or revision < 1):
        raise ValueError(f"{what} must be an integer >= 1, not {revision!r}")
    return revision


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    target: str  # path and query, encoded
    finish: Callable[[httpx.Response, str], T]  # (final response, its endpoint) -> result
    idempotent: bool  # safe to send again after an unclear failure (reads)
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Statuses that are this call's answer as they are (no try elsewhere), e.g. 503 for health.
    answers: frozenset[int] = frozenset()


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
    if status == 410:
        compacted = Compacted(message, **kwargs)
        compacted.compact_revision = parse_error_field(response.content, "compact_revision") or 0
        raise compacted
    if status == 400 and error == "future revision":
        future = FutureRevision(message, **kwargs)
        future.current = parse_error_field(response.content, "current_revision") or 0
        raise future
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


def _query(pairs: list[tuple[str, str]]) -> str:
    return "?" + "&".join(f"{name}={value}" for name, value in pairs) if pairs else ""


def _read_options(serializable: bool, revision: int | None) -> list[tuple[str, str]]:
    pairs = []
    if check_revision(revision) is not None:
        pairs.append(("revision", str(revision)))
    if serializable:
        pairs.append(("consistency", "serializable"))
    return pairs


def get(key: Key, *, serializable: bool = False, revision: int | None = None) -> Call[Value]:
    raw = key_bytes(key)

    def finish(response: httpx.Response, endpoint: str) -> Value:
        raise_for_status(response, endpoint, idempotent=True, not_found=KeyNotFound)
        return Value(
            raw,
            response.content,
            parse_etag(response.headers.get("etag")),
            parse_position(response.headers),
        )

    query = _query(_read_options(serializable, revision))
    return Call("GET", f"/v1/kv/{encode_key_path(raw)}{query}", finish, idempotent=True)


def _condition(if_revision: int | None) -> dict[str, str]:
    if if_revision is None:
        return {}
    if type(if_revision) is not int or if_revision < 0:
        raise ValueError(f"if_revision must be an integer >= 0, not {if_revision!r}")
    if if_revision == 0:
        return {"if-none-match": "*"}
    return {"if-match": encode_etag(if_revision)}


def put(
    key: Key, value: Key, *, if_revision: int | None = None, lease: int | None = None
) -> Call[PutResponse]:
    raw = key_bytes(key)
    query = "" if lease is None else f"?lease={check_lease_id(lease)}"

    def finish(response: httpx.Response, endpoint: str) -> PutResponse:
        _raise_for_lease(response, endpoint, idempotent=False, lease=lease or 0)
        return PutResponse(
            parse_etag(response.headers.get("etag")), parse_position(response.headers)
        )

    return Call(
        "PUT",
        f"/v1/kv/{encode_key_path(raw)}{query}",
        finish,
        idempotent=False,
        content=to_bytes(value, "value"),
        headers=_condition(if_revision),
    )


def delete(
    key: Key | None = None, *, prefix: Key | None = None, if_revision: int | None = None
) -> Call[DeleteResponse]:
    """A key (``KeyNotFound`` if absent), or every key under ``prefix`` (any number of them)."""
    if (key is None) == (prefix is None):
        raise ValueError("delete a key or a prefix: give exactly one of them")
    if prefix is not None:
        if if_revision is not None:
            raise ValueError("a prefix delete takes no if_revision: use a transaction")
        target = "/v1/kv?prefix=" + encode_query_bytes(to_bytes(prefix, "prefix"))
    else:
        assert key is not None
        target = f"/v1/kv/{encode_key_path(key_bytes(key))}"

    def finish(response: httpx.Response, endpoint: str) -> DeleteResponse:
        raise_for_status(response, endpoint, idempotent=False, not_found=KeyNotFound)
        body = _json_body(response, endpoint) if response.content else None
        if not isinstance(body, dict):
            body = {}
        # A key's delete deleted one key; a prefix delete says how many.
        revision, deleted = body.get("revision"), body.get("deleted", 1 if key else None)
        if type(revision) is not int or type(deleted) is not int:
            if prefix is not None:
                raise _malformed(response, endpoint, WireFormatError("expected revision, deleted"))
            revision, deleted = None, 1
        return DeleteResponse(revision, parse_position(response.headers), deleted)

    return Call("DELETE", target, finish, idempotent=False, headers=_condition(if_revision))


def get_prefix(
    prefix: Key = b"",
    *,
    limit: int | None = None,
    after: Key | None = None,
    serializable: bool = False,
    revision: int | None = None,
) -> Call[RangeResponse]:
    query = [("prefix", encode_query_bytes(to_bytes(prefix, "prefix")))]
    if limit is not None:
        if type(limit) is not int or limit < 1:
            raise ValueError(f"limit must be an integer >= 1, not {limit!r}")
        query.append(("limit", str(limit)))
    if after is not None:
        query.append(("after", encode_query_bytes(to_bytes(after, "key"))))
    query += _read_options(serializable, revision)

    def finish(response: httpx.Response, endpoint: str) -> RangeResponse:
        raise_for_status(response, endpoint, idempotent=True)
        try:
            kvs, revision, more = range_from_json(_json_body(response, endpoint))
        except WireFormatError as exc:
            raise _malformed(response, endpoint, exc) from None
        return RangeResponse(kvs, revision, more, parse_position(response.headers))

    return Call("GET", "/v1/kv" + _query(query), finish, idempotent=True)


def compact(revision: int) -> Call[CompactResponse]:
    check_revision(revision)

    def finish(response: httpx.Response, endpoint: str) -> CompactResponse:
        raise_for_status(response, endpoint, idempotent=False)
        body = _json_body(response, endpoint)
        now = body.get("revision") if isinstance(body, dict) else None
        point = body.get("compact_revision") if isinstance(body, dict) else None
        if type(now) is not int or type(point) is not int:
            raise _malformed(response, endpoint, WireFormatError("expected compact_revision"))
        return CompactResponse(now, point, parse_position(response.headers))

    content = json.dumps({"revision": revision}).encode()
    return Call("POST", "/v1/compact", finish, idempotent=False, content=content, headers=_JSON)


def txn(command: TxnCommand) -> Call[TxnResponse]:
    """A transaction; one that only reads may be sent again after an unclear failure."""

    def finish(response: httpx.Response, endpoint: str) -> TxnResponse:
        raise_for_status(response, endpoint, idempotent=is_read_only(command))
        try:
            succeeded, revision, responses = txn_responses_from_json(_json_body(response, endpoint))
        except WireFormatError as exc:
            raise _malformed(response, endpoint, exc) from None
        return TxnResponse(succeeded, revision, responses, parse_position(response.headers))

    return Call(
        "POST",
        "/v1/txn",
        finish,
        idempotent=is_read_only(command),
        content=json.dumps(txn_to_json(command)).encode(),
        headers=_JSON,
    )


# -- leases -------------------------------------------------------------------------------------

_MAX_INT = (1 << 63) - 1


def check_lease_id(lease: int) -> int:
    """``lease`` if it is a lease id (an integer from 1 to 2^63 - 1); ``ValueError`` otherwise."""
    if type(lease) is not int or not 1 <= lease <= _MAX_INT:
        raise ValueError(f"a lease id is an integer from 1 to {_MAX_INT}, not {lease!r}")
    return lease


def _raise_for_lease(
    response: httpx.Response, endpoint: str, *, idempotent: bool, lease: int
) -> None:
    """``raise_for_status``, where a 404 about a lease is ``LeaseNotFound``."""
    if response.status_code == 404 and parse_error_body(response.content)[0] == "lease not found":
        try:
            raise_for_status(response, endpoint, idempotent=idempotent, not_found=LeaseNotFound)
        except LeaseNotFound as exc:
            exc.lease = lease
            raise
    raise_for_status(response, endpoint, idempotent=idempotent)


def _lease_field(body: Any, name: str) -> int:
    value = body.get(name) if isinstance(body, dict) else None
    if type(value) is not int:
        raise WireFormatError(f"expected {name!r} as an integer")
    return value


def grant_lease(ttl: int, *, lease: int | None = None) -> Call[LeaseGrant]:
    """A lease of ``ttl`` whole seconds; ``lease`` chooses its id (``Conflict`` if taken)."""
    if type(ttl) is not int or ttl < 1:
        raise ValueError(f"a lease TTL is a whole number of seconds >= 1, not {ttl!r}")
    body: dict[str, int] = {"ttl": ttl}
    if lease is not None:
        body["id"] = check_lease_id(lease)

    def finish(response: httpx.Response, endpoint: str) -> LeaseGrant:
        raise_for_status(response, endpoint, idempotent=False)
        answer = _json_body(response, endpoint)
        try:
            return LeaseGrant(_lease_field(answer, "id"), _lease_field(answer, "ttl"))
        except WireFormatError as exc:
            raise _malformed(response, endpoint, exc) from None

    content = json.dumps(body).encode()
    return Call("POST", "/v1/leases", finish, idempotent=False, content=content, headers=_JSON)


def keepalive(lease: int) -> Call[int]:
    """Renew ``lease`` for its whole TTL (answered by the leader); its TTL. Sending it twice
    renews it twice: it may be retried anywhere."""

    def finish(response: httpx.Response, endpoint: str) -> int:
        _raise_for_lease(response, endpoint, idempotent=True, lease=lease)
        try:
            return _lease_field(_json_body(response, endpoint), "ttl")
        except WireFormatError as exc:
            raise _malformed(response, endpoint, exc) from None

    target = f"/v1/leases/{check_lease_id(lease)}/keepalive"
    return Call("POST", target, finish, idempotent=True)


def lease_status(lease: int, *, keys: bool = True) -> Call[LeaseStatus]:
    def finish(response: httpx.Response, endpoint: str) -> LeaseStatus:
        _raise_for_lease(response, endpoint, idempotent=True, lease=lease)
        body = _json_body(response, endpoint)
        try:
            attached = _attached_keys(body) if keys else None
            return LeaseStatus(
                lease, _lease_field(body, "ttl"), _lease_field(body, "granted_ttl"), attached
            )
        except WireFormatError as exc:
            raise _malformed(response, endpoint, exc) from None

    query = "" if keys else "?keys=false"
    return Call("GET", f"/v1/leases/{check_lease_id(lease)}{query}", finish, idempotent=True)


def _attached_keys(body: Any) -> tuple[bytes, ...]:
    listed = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(listed, list) or not all(isinstance(k, dict) for k in listed):
        raise WireFormatError("expected 'keys' as a list of objects")
    return tuple(bytes_from_json(k, "key") for k in listed)


def revoke_lease(lease: int) -> Call[LeaseRevoked]:
    """Revoke ``lease`` and delete its keys. Revoking twice does what revoking once does, so it
    may be retried (a retry of one that applied finds the lease gone: ``LeaseNotFound``)."""

    def finish(response: httpx.Response, endpoint: str) -> LeaseRevoked:
        _raise_for_lease(response, endpoint, idempotent=True, lease=lease)
        body = _json_body(response, endpoint)
        try:
            return LeaseRevoked(
                lease, _lease_field(body, "revision"), _lease_field(body, "deleted")
            )
        except WireFormatError as exc:
            raise _malformed(response, endpoint, exc) from None

    return Call("DELETE", f"/v1/leases/{check_lease_id(lease)}", finish, idempotent=True)


def leases() -> Call[tuple[int, ...]]:
    def finish(response: httpx.Response, endpoint: str) -> tuple[int, ...]:
        raise_for_status(response, endpoint, idempotent=True)
        body = _json_body(response, endpoint)
        listed = body.get("leases") if isinstance(body, dict) else None
        if not isinstance(listed, list):
            raise _malformed(response, endpoint, WireFormatError("expected {'leases': [...]}"))
        try:
            return tuple(_lease_field(item, "id") for item in listed)
        except WireFormatError as exc:
            raise _malformed(response, endpoint, exc) from None

    return Call("GET", "/v1/leases", finish, idempotent=True)


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


def promote_member(member_id: int) -> Call[tuple[Member, ...]]:
    return Call(
        "POST",
        f"/v1/members/{_member_id(member_id)}/promote",
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


def health() -> Call[dict[str, Any]]:
    """``/-/health``: answered 200 when healthy, 503 with the reason when not — both are an
    answer here, not a failure to retry elsewhere."""

    def finish(response: httpx.Response, endpoint: str) -> dict[str, Any]:
        if response.status_code not in (200, 503):
            raise_for_status(response, endpoint, idempotent=True)
        body = _json_body(response, endpoint)
        if not isinstance(body, dict) or not isinstance(body.get("health"), str):
            raise _malformed(response, endpoint, WireFormatError("expected {'health': ...}"))
        return body

    return Call("GET", "/-/health", finish, idempotent=True, answers=frozenset({503}))


def status() -> Call[dict[str, Any]]:
    def finish(response: httpx.Response, endpoint: str) -> dict[str, Any]:
        raise_for_status(response, endpoint, idempotent=True)
        body = _json_body(response, endpoint)
        if not isinstance(body, dict):
            raise _malformed(response, endpoint, WireFormatError("expected a JSON object"))
        return body

    return Call("GET", "/-/status", finish, idempotent=True)
