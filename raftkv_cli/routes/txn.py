"""``POST /v1/txn``: compares, then one branch of operations, atomically at one revision (raw
ASGI). The JSON is parsed once into a ``raftkv.kv.TxnCommand`` (``raftkv_cli._txn``)."""

from __future__ import annotations

from raftkv.kv import KVService, TxnFormatError, ValueTooLarge, txn_from_json

from .._http import HTTPError, Reply, json_reply
from .._request import Receive, Scope, read_json
from .._txn import txn_result_json
from .kv import DEFAULT_LIST_LIMIT

__all__ = ["TxnRoutes"]

_EXAMPLE = '{"compare": [...], "success": [...], "failure": [...]}'


class TxnRoutes:
    def __init__(self, service: KVService) -> None:
        self.service = service
        self.limits = service.limits

    async def txn(self, scope: Scope, receive: Receive) -> Reply:
        limits = self.limits
        try:
            body = await read_json(scope, receive, limits.max_txn_bytes, _EXAMPLE)
        except ValueTooLarge:
            detail = f"the body is over the limit of {limits.max_txn_bytes} bytes"
            raise HTTPError(413, "transaction too large", detail) from None
        try:
            txn = txn_from_json(
                body,
                default_range_limit=min(DEFAULT_LIST_LIMIT, limits.max_list_limit),
                max_range_limit=limits.max_list_limit,
            )
        except TxnFormatError as exc:
            raise HTTPError(400, "bad transaction", str(exc)) from None
        result = await self.service.txn(txn)
        return json_reply(txn_result_json(txn, result))
