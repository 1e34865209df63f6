"""``/v1/kv``: read (now or at a revision), write, compare-and-swap, delete (a key or a prefix)
and list keys, and ``/v1/compact`` (raw ASGI, the hot path).

Each handler takes the ASGI scope (and ``receive`` for a body), parses it once through
``raftkv_cli._request`` and answers a ``Reply``; the seed's key routes call the same code.
"""

from __future__ import annotations

from raftkv.kv import (
    CompareFailed,
    KVService,
    PutResult,
    UnknownLease,
    encode_etag,
    key_value_to_json,
)

from .._http import HTTPError, Reply, json_reply
from .._request import (
    Query,
    Receive,
    Scope,
    header,
    key_at,
    read_body,
    read_json,
    write_condition,
)

__all__ = ["DEFAULT_LIST_LIMIT", "KV_PREFIX", "KVRoutes"]

KV_PREFIX = "/v1/kv/"
DEFAULT_LIST_LIMIT = 1000
_COMPACT_BODY_BYTES = 1024
_COMPACT_EXAMPLE = '{"revision": <an integer >= 1>}'


class KVRoutes:
    def __init__(self, service: KVService) -> None:
        self.service = service
        self.limits = service.limits

    async def get(self, scope: Scope, prefix: str = KV_PREFIX) -> Reply:
        """A key's value as the body, its mod revision as the ``ETag``."""
        key = key_at(scope, prefix, self.limits)
        query = Query.of(scope)
        kv = await self.service.get(
            key, linearizable=query.linearizable(), revision=query.revision()
        )
        if kv is None:
            raise _not_found(key)
        return Reply(
            200,
            kv.value,
            {
                "content-type": "application/octet-stream",
                "etag": encode_etag(kv.mod_revision),
                "x-create-revision": str(kv.create_revision),
            },
        )

    async def write(self, scope: Scope, receive: Receive, prefix: str = KV_PREFIX) -> PutResult:
        """Put the body under the key, if its condition holds (else 412), attached to the lease
        ``?lease=`` names (404 if there is no such lease; without it, detached)."""
        key = key_at(scope, prefix, self.limits)
        condition = write_condition(scope)
        lease = Query.of(scope).lease()
        value = await read_body(scope, receive, self.limits.max_value_bytes)
        if lease and self.service.store.lease(lease) is None:
            # Refused before the log if it is unknown once we are up to date (else the store
            # refuses it as it applies, which leaves an entry).
            await self.service.node.read_barrier()
            if self.service.store.lease(lease) is None:
                raise UnknownLease(lease)
        result = await self.service.put(key, value, if_revision=condition, lease=lease)
        if isinstance(result, CompareFailed):
            raise _precondition_failed(result)
        return result

    async def put(self, scope: Scope, receive: Receive) -> Reply:
        result = await self.write(scope, receive)
        status = 201 if result.prev is None else 200
        etag = {"etag": encode_etag(result.revision)}
        return json_reply({"revision": result.revision}, status, etag)

    async def delete(self, scope: Scope) -> Reply:
        key = key_at(scope, KV_PREFIX, self.limits)
        result = await self.service.delete(key, if_revision=write_condition(scope))
        if isinstance(result, CompareFailed):
            raise _precondition_failed(result)
        if not result.deleted:
            raise _not_found(key)
        return json_reply({"revision": result.revision, "deleted": 1})

    async def list(self, scope: Scope) -> Reply:
        query = Query.of(scope)
        maximum = self.limits.max_list_limit
        result = await self.service.range(
            query.bytes("prefix") or b"",
            after=query.bytes("after"),
            limit=query.limit(maximum, min(DEFAULT_LIST_LIMIT, maximum)),
            linearizable=query.linearizable(),
            revision=query.revision(),
        )
        return json_reply(
            {
                "kvs": [key_value_to_json(kv) for kv in result.kvs],
                "more": result.more,
                "revision": result.revision,
            }
        )

    async def delete_prefix(self, scope: Scope) -> Reply:
        """``DELETE /v1/kv?prefix=p``: every key under ``p`` at one revision. The parameter must
        be there (``prefix=`` deletes every key): a bare ``DELETE /v1/kv`` is a mistake."""
        prefix = Query.of(scope).bytes("prefix")
        if prefix is None:
            detail = "DELETE /v1/kv deletes by prefix: give ?prefix= (empty: every key)"
            raise HTTPError(400, "missing prefix", detail)
        if header(scope, b"if-match") is not None or header(scope, b"if-none-match") is not None:
            raise HTTPError(400, "bad condition", "a prefix delete takes no If-Match")
        result = await self.service.delete_prefix(prefix)
        return json_reply({"revision": result.revision, "deleted": len(result.deleted)})

    async def compact(self, scope: Scope, receive: Receive) -> Reply:
        """``POST /v1/compact`` ``{"revision": n}``: forget the history before ``n``."""
        body = await read_json(scope, receive, _COMPACT_BODY_BYTES, _COMPACT_EXAMPLE)
        revision = body.get("revision") if isinstance(body, dict) else None
        if type(revision) is not int or revision < 1 or len(body) != 1:
            raise HTTPError(400, "bad body", f"expected {_COMPACT_EXAMPLE}")
        result = await self.service.compact(revision)
        return json_reply(
            {"revision": result.revision, "compact_revision": result.compact_revision}
        )


def _not_found(key: bytes) -> HTTPError:
    return HTTPError(404, "key not found", key.decode("utf-8", "replace"))


def _precondition_failed(result: CompareFailed) -> HTTPError:
    return HTTPError(
        412,
        "precondition failed",
        f"the key's revision is {result.mod_revision}, not {result.expected}",
        {"etag": encode_etag(result.mod_revision)},
    )
