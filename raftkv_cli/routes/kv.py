"""``/v1/kv``: read, write, compare-and-swap, delete and list keys (raw ASGI, the hot path).

Each handler takes the ASGI scope (and ``receive`` for a body), parses it once through
``raftkv_cli._request`` and answers a ``Reply``; the seed's key routes call the same code.
"""

from __future__ import annotations

from raftkv.kv import CompareFailed, KVService, PutResult, encode_etag, key_value_to_json

from .._http import HTTPError, Reply, json_reply
from .._request import Query, Receive, Scope, key_at, read_body, write_condition

__all__ = ["KV_PREFIX", "KVRoutes"]

KV_PREFIX = "/v1/kv/"
_DEFAULT_LIST_LIMIT = 1000


class KVRoutes:
    def __init__(self, service: KVService) -> None:
        self.service = service
        self.limits = service.limits

    async def get(self, scope: Scope, prefix: str = KV_PREFIX) -> Reply:
        """A key's value as the body, its mod revision as the ``ETag``."""
        key = key_at(scope, prefix, self.limits)
        kv = await self.service.get(key, linearizable=Query.of(scope).linearizable())
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
        """Put the body under the key, if its condition holds (else 412)."""
        key = key_at(scope, prefix, self.limits)
        condition = write_condition(scope)
        value = await read_body(scope, receive, self.limits.max_value_bytes)
        result = await self.service.put(key, value, if_revision=condition)
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
            limit=query.limit(maximum, min(_DEFAULT_LIST_LIMIT, maximum)),
            linearizable=query.linearizable(),
        )
        return json_reply(
            {
                "kvs": [key_value_to_json(kv) for kv in result.kvs],
                "more": result.more,
                "revision": result.revision,
            }
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
