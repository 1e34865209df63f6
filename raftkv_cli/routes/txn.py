"""``POST /v1/txn``: compares, then one branch of operations, atomically at one revision (raw
ASGI). The JSON is parsed once into a ``raftkv.kv.TxnCommand`` (``raftkv_cli._txn``)."""

from __future__ import annotations

from raftkv.kv import KVService

from .._http import Reply, json_reply
from .._request import Receive, Scope, no_query, txn_request
from .._txn import txn_result_json

__all__ = ["TxnRoutes"]


class TxnRoutes:
    def __init__(self, service: KVService) -> None:
        self.service = service
        self.limits = service.limits

    async def txn(self, scope: Scope, receive: Receive) -> Reply:
        no_query(scope)
        txn = await txn_request(scope, receive, self.limits)
        result = await self.service.txn(txn)
        return json_reply(txn_result_json(txn, result))
