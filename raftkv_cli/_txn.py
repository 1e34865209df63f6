"""The answer to ``POST /v1/txn`` as JSON: ``{"succeeded": bool, "revision": n, "responses":
[...]}``, one response per operation of the branch that ran: ``{"put": {"revision",
"prev_kv"?}}``, ``{"get": {"kvs"}}``, ``{"range": {"kvs", "more"}}``, ``{"delete": {"deleted":
k}}`` (the transaction itself is parsed by ``raftkv.kv.txn_from_json``)."""

from __future__ import annotations

from typing import Any

from raftkv.kv import (
    DeletePrefixResult,
    DeleteResult,
    PutResult,
    RangeOp,
    RangeResult,
    TxnCommand,
    TxnOp,
    TxnResponse,
    TxnResult,
    key_value_to_json,
)

__all__ = ["txn_result_json"]


def txn_result_json(txn: TxnCommand, result: TxnResult) -> dict[str, Any]:
    """The answer to ``txn``, which ran as ``result`` says."""
    ops = txn.success if result.succeeded else txn.failure
    return {
        "succeeded": result.succeeded,
        "revision": result.revision,
        "responses": [_response(op, r) for op, r in zip(ops, result.responses, strict=True)],
    }


def _response(op: TxnOp, response: TxnResponse) -> dict[str, Any]:
    match response:
        case PutResult(revision, prev):
            put: dict[str, Any] = {"revision": revision}
            if prev is not None:
                put["prev_kv"] = key_value_to_json(prev)
            return {"put": put}
        case RangeResult(kvs, more):
            found = [key_value_to_json(kv) for kv in kvs]
            if isinstance(op, RangeOp) and op.prefix:
                return {"range": {"kvs": found, "more": more}}
            return {"get": {"kvs": found}}
        case DeleteResult(_, prev):
            return {"delete": {"deleted": int(prev is not None)}}
        case DeletePrefixResult(_, deleted):
            return {"delete": {"deleted": len(deleted)}}
