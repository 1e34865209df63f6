"""Parse once, at the edge: an HTTP request becomes typed values before any route runs.

Every route, on the raw ASGI path or in Quart, reads its input through these functions, so two
routes never parse the same input twice or differently. They work on the ASGI scope (Quart hands
it over as ``request.scope``) and raise ``HTTPError`` with the documented status and JSON body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

from raftkv.kv import (
    InvalidKey,
    Limits,
    TxnCommand,
    TxnFormatError,
    ValueTooLarge,
    WireFormatError,
    check_key,
    check_value_size,
    parse_revision_tag,
    txn_from_json,
)

from ._http import HTTPError

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "LeaseGrantRequest",
    "Query",
    "Receive",
    "Scope",
    "Send",
    "WatchRequest",
    "check_headers",
    "declared_length",
    "header",
    "key_at",
    "lease_grant_request",
    "no_query",
    "parse_lease_id",
    "parse_member_id",
    "read_body",
    "read_json",
    "txn_request",
    "unquote",
    "watch_request",
    "write_condition",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_MAX_MEMBER_ID_DIGITS = 18  # ids are int64 on the wire
_MAX_INT = (1 << 63) - 1  # revisions fit in an int64 everywhere
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() takes "²", which int() refuses


T = TypeVar("T")


def _parsed_once(scope: Scope, name: str, parse: Callable[[], T]) -> T:
    """``parse()``, remembered in the scope: the guard and the route that both need a request's
    key or query read the same value, parsed once."""
    slot = "raftkv." + name
    if slot not in scope:
        scope[slot] = parse()
    return scope[slot]  # type: ignore[no-any-return]


def _integer(text: str, minimum: int = 0, maximum: int = _MAX_INT) -> int | None:
    """``text`` as a decimal integer in ``minimum..maximum``, else None."""
    if _DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def unquote(raw: bytes, what: str) -> bytes:
    """Percent-decode ``raw`` strictly: a ``%`` not followed by two hex digits is an error
    (``what`` names the part of the request), never a literal."""
    if b"%" in raw and _BAD_ESCAPE.search(raw):
        raise HTTPError(400, what, f"invalid percent-escape in {raw.decode('latin-1')!r}")
    return unquote_to_bytes(raw)


def no_query(scope: Scope) -> None:
    """Refuse any query parameter: the route takes none."""
    Query.of(scope)


# Request headers that would change what a request does if raftkv honoured them: refused rather
# than ignored (a conditional write that is not conditional loses data). raftkv's own are
# If-Match and If-None-Match (writes), Last-Event-ID (watches).
_UNSUPPORTED_CONDITIONS = (b"if-modified-since", b"if-unmodified-since", b"if-range")
_OPTION_PREFIXES = (b"x-raftkv-", b"x-raft-")
_OWN_HEADERS = frozenset({b"x-raftkv-forwarded"})  # a member's forward (raftkv_cli._forward)


def check_headers(scope: Scope) -> None:
    """400 for a header that looks like an option raftkv does not have. ASGI servers hand
    header names over lower-cased, as ``header`` relies on too."""
    for name, _ in scope["headers"]:
        if name in _UNSUPPORTED_CONDITIONS:
            shown = name.decode("latin-1")
            detail = f"{shown} is not supported: use If-Match or If-None-Match"
            raise HTTPError(400, "unsupported header", detail)
        if name.startswith(_OPTION_PREFIXES) and name not in _OWN_HEADERS:
            shown = name.decode("latin-1")
            raise HTTPError(400, "unknown header", f"{shown} is not a raftkv request header")


def header(scope: Scope, name: bytes) -> str | None:
    """The last value of header ``name`` (lower-case bytes), decoded as Latin-1."""
    found = None
    for k, v in scope["headers"]:
        if k == name:
            found = v
    return None if found is None else bytes(found).decode("latin-1")


@dataclass(frozen=True, slots=True)
class Query:
    """A query string, its values as the raw bytes the client percent-encoded (keys may be any
    bytes); the last of repeated names wins."""

    values: Mapping[str, bytes]

    @classmethod
    def of(cls, scope: Scope, *accepted: str) -> Query:
        """The query of a route that takes the parameters ``accepted``: any other is refused
        (400 naming it), so that a misspelt or unsupported option is never silently ignored
        (``PUT /v1/kv/k?ttl=5`` is not a write with a TTL)."""
        query = cls.parsed(scope)
        unknown = sorted(set(query.values) - set(accepted))
        if unknown:
            takes = ", ".join(accepted) if accepted else "none"
            names = ", ".join(repr(n) for n in unknown)
            detail = f"{scope['method']} {scope['path']} takes no {names} (its parameters: {takes})"
            raise HTTPError(400, "unknown parameter", detail)
        return query

    @classmethod
    def parsed(cls, scope: Scope) -> Query:
        """The query, parsed once per request, whatever parameters the route takes (the guard
        reads it before the route, which refuses the parameters it does not take)."""
        return _parsed_once(scope, "query", lambda: cls._parse(scope))

    @classmethod
    def _parse(cls, scope: Scope) -> Query:
        values: dict[str, bytes] = {}
        for pair in bytes(scope.get("query_string", b"")).split(b"&"):
            if not pair:
                continue
            k, _, v = pair.partition(b"=")
            name = unquote(k.replace(b"+", b" "), "bad query").decode("utf-8", "replace")
            values[name] = unquote(v.replace(b"+", b" "), "bad query")
        return cls(values)

    def bytes(self, name: str) -> bytes | None:
        return self.values.get(name)

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        return None if value is None else value.decode("utf-8", "replace")

    def linearizable(self) -> bool:
        """``?consistency=``: linearizable (the default) or serializable; anything else 400."""
        value = self.text("consistency")
        if value is None or value == "linearizable":
            return True
        if value == "serializable":
            return False
        raise HTTPError(400, "bad consistency", "use consistency=linearizable or serializable")

    def limit(self, maximum: int, default: int) -> int:
        text = self.text("limit")
        if text is None:
            return default
        value = _integer(text, 1, maximum)
        if value is None:
            raise HTTPError(400, "bad limit", f"limit is 1..{maximum}")
        return value

    def revision(self, name: str = "revision") -> int | None:
        """A revision parameter (an integer >= 1), or None when absent; anything else 400."""
        text = self.text(name)
        if text is None:
            return None
        value = _integer(text, 1)
        if value is None:
            raise HTTPError(400, f"bad {name}", f"{name} must be an integer >= 1, not {text!r}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean parameter: ``true`` or ``false`` (absent: ``default``); anything else
        400."""
        text = self.text(name)
        if text is None:
            return default
        if text in ("true", "false"):
            return text == "true"
        raise HTTPError(400, f"bad {name}", f"{name} is true or false, not {text!r}")

    def lease(self) -> int:
        """``?lease=ID``: the lease a write attaches its key to (absent: 0, none)."""
        text = self.text("lease")
        return 0 if text is None else parse_lease_id(text)


def key_at(scope: Scope, prefix: str, limits: Limits) -> bytes:
    """The key after ``prefix`` in the path, exactly as the client percent-encoded it (any
    bytes), checked against the key limits (``InvalidKey``: 400)."""
    return _parsed_once(scope, "key" + prefix, lambda: _key_at(scope, prefix, limits))


def _key_at(scope: Scope, prefix: str, limits: Limits) -> bytes:
    raw = scope.get("raw_path")
    if raw is None:  # servers that omit raw_path: the decoded path is all we have
        key = str(scope["path"])[len(prefix) :].encode("utf-8", "surrogateescape")
    else:
        key = unquote(bytes(raw).split(b"?", 1)[0], "invalid key")[len(prefix) :]
    return check_key(key, limits.max_key_bytes)


def write_condition(scope: Scope) -> int | None:
    """The compare-and-swap condition of a write: ``If-Match: "<rev>"`` (only if the key's
    mod revision is rev), ``If-None-Match: *`` (0: only if absent), or None."""
    if_match = header(scope, b"if-match")
    if_none_match = header(scope, b"if-none-match")
    if if_match is not None and if_none_match is not None:
        raise HTTPError(400, "conflicting conditions", "use If-Match or If-None-Match")
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise HTTPError(400, "bad If-None-Match", "only 'If-None-Match: *' is supported")
        return 0
    if if_match is None:
        return None
    try:
        revision = parse_revision_tag(if_match)
    except WireFormatError as exc:
        raise HTTPError(400, "bad If-Match", str(exc)) from None
    if revision < 1:
        raise HTTPError(400, "bad If-Match", "revisions start at 1")
    return revision


def parse_lease_id(text: str) -> int:
    """A lease id in a path or query: a decimal integer from 1 to 2^63 - 1; else 400."""
    lease = _integer(text, 1)
    if lease is None:
        detail = f"{text!r:.40} is not a lease id (an integer from 1 to {_MAX_INT})"
        raise HTTPError(400, "invalid lease id", detail)
    return lease


@dataclass(frozen=True, slots=True)
class LeaseGrantRequest:
    """``POST /v1/leases``: the TTL asked for (whole seconds; its bounds are the lessor's to
    check) and the lease id chosen by the client, if any."""

    ttl: int
    id: int | None


_GRANT_BODY_BYTES = 1024
_GRANT_EXAMPLE = '{"ttl": <seconds>, "id": <optional lease id>}'


async def lease_grant_request(scope: Scope, receive: Receive) -> LeaseGrantRequest:
    body = await read_json(scope, receive, _GRANT_BODY_BYTES, _GRANT_EXAMPLE)
    if not isinstance(body, dict) or "ttl" not in body or set(body) - {"ttl", "id"}:
        raise HTTPError(400, "bad body", f"expected {_GRANT_EXAMPLE}")
    ttl, lease = body["ttl"], body.get("id")
    if type(ttl) is not int:
        raise HTTPError(
            400, "bad ttl", f"a lease TTL is a whole number of seconds, not {ttl!r:.40}"
        )
    if lease is not None and (type(lease) is not int or not 1 <= lease <= _MAX_INT):
        detail = f"a lease id is an integer from 1 to {_MAX_INT}, not {lease!r:.40}"
        raise HTTPError(400, "invalid lease id", detail)
    return LeaseGrantRequest(ttl, lease)


def parse_member_id(text: str) -> int:
    member_id = _integer(text, 1) if len(text) <= _MAX_MEMBER_ID_DIGITS else None
    if member_id is None:
        raise HTTPError(400, "invalid member id", f"{text!r} is not a node id (an integer >= 1)")
    return member_id


def declared_length(scope: Scope) -> int | None:
    """The body's ``Content-Length``, or None when it is not given (400 when it is not a
    number)."""
    value = header(scope, b"content-length")
    if value is None:
        return None
    length = _integer(value.strip())
    if length is None:
        raise HTTPError(400, "bad content-length", f"{value!r} is not a length")
    return length


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit``: from its declared length
    before reading anything, else at the first chunk past it."""
    declared = declared_length(scope)
    if declared is not None:
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


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


async def read_json(scope: Scope, receive: Receive, limit: int, example: str) -> Any:
    """The body as JSON (at most ``limit`` bytes: 413 beyond); 400 saying what was expected
    (``example``) when it is not JSON."""
    body = await read_body(scope, receive, limit)
    try:
        return json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise HTTPError(400, "bad body", f"expected JSON {example}: {exc}") from None


_TXN_EXAMPLE = '{"compare": [...], "success": [...], "failure": [...]}'
DEFAULT_LIST_LIMIT = 1000  # keys a list (or a transaction's range) returns by default


async def txn_request(scope: Scope, receive: Receive, limits: Limits) -> TxnCommand:
    """``POST /v1/txn``: the transaction in the body (read once, whoever asks first)."""
    slot = "raftkv.txn"
    if slot not in scope:
        scope[slot] = await _read_txn(scope, receive, limits)
    txn: TxnCommand = scope[slot]
    return txn


async def _read_txn(scope: Scope, receive: Receive, limits: Limits) -> TxnCommand:
    try:
        body = await read_json(scope, receive, limits.max_txn_bytes, _TXN_EXAMPLE)
    except ValueTooLarge:
        detail = f"the body is over the limit of {limits.max_txn_bytes} bytes"
        raise HTTPError(413, "transaction too large", detail) from None
    try:
        return txn_from_json(
            body,
            default_range_limit=min(DEFAULT_LIST_LIMIT, limits.max_list_limit),
            max_range_limit=limits.max_list_limit,
        )
    except TxnFormatError as exc:
        raise HTTPError(400, "bad transaction", str(exc)) from None


@dataclass(frozen=True, slots=True)
class WatchRequest:
    """``GET /v1/watch``: what to watch, from where."""

    key: bytes | None  # one key; None with prefix None: every key
    prefix: bytes | None
    start_revision: int | None  # None: the revision after the current one
    prev_kv: bool


def watch_request(scope: Scope, limits: Limits) -> WatchRequest:
    """``?key=`` or ``?prefix=`` (neither: every key; both: 400), ``?start_revision=``,
    ``?prev_kv=true``; a ``Last-Event-ID: r`` header resumes at ``r + 1`` and wins over
    ``start_revision``."""
    return _parsed_once(scope, "watch", lambda: _watch_request(scope, limits))


def _watch_request(scope: Scope, limits: Limits) -> WatchRequest:
    query = Query.of(scope, "key", "prefix", "start_revision", "prev_kv")
    key, prefix = query.bytes("key"), query.bytes("prefix")
    if key is not None and prefix is not None:
        raise HTTPError(400, "conflicting parameters", "watch a key or a prefix, not both")
    if key is not None:
        check_key(key, limits.max_key_bytes)
    if prefix is not None and len(prefix) > limits.max_key_bytes:
        # (raftkv.kv.check_prefix says the same; it is not exported)
        size, most = len(prefix), limits.max_key_bytes
        raise InvalidKey(f"prefix of {size} bytes is over the limit of {most} bytes")
    start = query.revision("start_revision")
    last_event_id = header(scope, b"last-event-id")
    if last_event_id is not None:
        last = _integer(last_event_id.strip(), 0, _MAX_INT - 1)
        if last is None:
            detail = f"Last-Event-ID is the revision of the last event seen, not {last_event_id!r}"
            raise HTTPError(400, "bad Last-Event-ID", detail)
        start = last + 1
    return WatchRequest(key, prefix, start, query.flag("prev_kv"))
