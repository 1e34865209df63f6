"""The JSON of a transaction, as ``POST /v1/txn`` (and ``raftkv txn``) takes it: one owner of
the format for the daemon, which parses it (``txn_from_json``), and the client, which writes it
(``txn_to_json``). The shape is documented in docs/api.md::

    {"compare": [{"key": "k", "target": "value", "op": "==", "value": "v"}],
     "success": [{"put": {"key": "k", "value": "w"}}],
     "failure": [{"get": {"key": "k"}}]}

    op: {"put": {"key", "value", "lease"?}} | {"get": {"key"}} | {"range": {"prefix", "limit"?}}
        | {"delete": {"key"}} | {"delete": {"prefix"}}

Keys, prefixes and values are strings (UTF-8) or ``key_b64`` / ``prefix_b64`` / ``value_b64``
(base64). A compare's ``target`` is ``value``, ``version``, ``create_revision`` or
``mod_revision`` and its ``op`` one of ``==``, ``!=``, ``<``, ``>``; it compares with a string
(or ``value_b64``) for ``value``, an integer >= 0 otherwise. Every part is optional. Anything
else raises ``TxnFormatError``, whose message names the field
(``compare[1].target: unknown target 'size'``). Sizes and the number of operations are the
store's to check (``check_txn``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ._commands import (
    Compare,
    CompareOp,
    CompareTarget,
    DeleteCommand,
    DeletePrefixCommand,
    PutCommand,
    RangeOp,
    TxnCommand,
    TxnOp,
)
from ._limits import MAX_INT
from ._wire import WireFormatError, bytes_field, bytes_from_json

__all__ = ["TxnFormatError", "txn_from_json", "txn_to_json"]

TARGETS = {
    "value": CompareTarget.VALUE,
    "version": CompareTarget.VERSION,
    "create_revision": CompareTarget.CREATE_REVISION,
    "mod_revision": CompareTarget.MOD_REVISION,
}
NAMES = {target: name for name, target in TARGETS.items()}
OPERATORS = {
    "==": CompareOp.EQUAL,
    "!=": CompareOp.NOT_EQUAL,
    "<": CompareOp.LESS,
    ">": CompareOp.GREATER,
}
SYMBOLS = {op: symbol for symbol, op in OPERATORS.items()}
_KEY = ("key", "key_b64")
_PREFIX = ("prefix", "prefix_b64")
_VALUE = ("value", "value_b64")
_OP_FIELDS = {"put": {*_KEY, *_VALUE, "lease"}, "get": {*_KEY}, "range": {*_PREFIX, "limit"}}
_OP_FIELDS["delete"] = {*_KEY, *_PREFIX}


class TxnFormatError(WireFormatError):
    """A transaction that is not in the documented shape; the message names the field."""


def txn_from_json(
    body: Any, *, default_range_limit: int | None = None, max_range_limit: int | None = None
) -> TxnCommand:
    """The transaction in a parsed JSON ``body``. A range without a ``limit`` gets
    ``default_range_limit`` (None: no limit); a limit over ``max_range_limit`` is refused."""
    obj = _object(body, "", ("compare", "success", "failure"))
    limits = (default_range_limit, max_range_limit)
    return TxnCommand(
        tuple(_compare(c, f"compare[{i}]") for i, c in enumerate(_list(obj, "compare"))),
        tuple(_op(o, f"success[{i}]", limits) for i, o in enumerate(_list(obj, "success"))),
        tuple(_op(o, f"failure[{i}]", limits) for i, o in enumerate(_list(obj, "failure"))),
    )


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _object(value: Any, where: str, fields: Collection[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TxnFormatError(f"{where or 'transaction'}: expected a JSON object")
    for name in value:
        if name not in fields:
            raise TxnFormatError(f"{_at(where, name)}: unknown field")
    return value


def _list(obj: dict[str, Any], name: str) -> list[Any]:
    value = obj.get(name, [])
    if not isinstance(value, list):
        raise TxnFormatError(f"{name}: expected a JSON array")
    return value


def _bytes(obj: dict[str, Any], name: str, where: str) -> bytes:
    try:
        return bytes_from_json(obj, name)
    except WireFormatError as exc:
        raise TxnFormatError(f"{where}: {exc}") from None


def _key(obj: dict[str, Any], where: str) -> bytes:
    key = _bytes(obj, "key", where)
    if not key:
        raise TxnFormatError(f"{_at(where, 'key')}: a key must not be empty")
    return key


def _compare(value: Any, where: str) -> Compare:
    obj = _object(value, where, ("target", "op", *_KEY, *_VALUE))
    target_name, op_name = obj.get("target"), obj.get("op")
    target = TARGETS.get(target_name) if isinstance(target_name, str) else None
    if target is None:
        known = ", ".join(TARGETS)
        raise TxnFormatError(
            f"{where}.target: unknown target {target_name!r:.40} (expected one of {known})"
        )
    op = OPERATORS.get(op_name) if isinstance(op_name, str) else None
    if op is None:
        known = ", ".join(OPERATORS)
        raise TxnFormatError(f"{where}.op: unknown op {op_name!r:.40} (expected one of {known})")
    key = _key(obj, where)
    if target is CompareTarget.VALUE:
        return Compare(key, target, op, _bytes(obj, "value", where))
    number = obj.get("value")
    if "value_b64" in obj or type(number) is not int or not 0 <= number <= MAX_INT:
        raise TxnFormatError(f"{where}.value: a {target_name} compares with an integer >= 0")
    return Compare(key, target, op, number)


def _op(value: Any, where: str, limits: tuple[int | None, int | None]) -> TxnOp:
    if not isinstance(value, dict) or len(value) != 1:
        raise TxnFormatError(f"{where}: expected one of {{'put': ...}}, {{'get': ...}}, ...")
    ((kind, args),) = value.items()
    fields = _OP_FIELDS.get(kind)
    if fields is None:
        expected = ", ".join(_OP_FIELDS)
        raise TxnFormatError(f"{where}.{kind}: unknown operation (expected one of {expected})")
    at = f"{where}.{kind}"
    obj = _object(args, at, fields)
    match kind:
        case "put":
            return PutCommand(_key(obj, at), _bytes(obj, "value", at), None, _lease(obj, at))
        case "get":
            return RangeOp(_key(obj, at))
        case "range":
            return RangeOp(_bytes(obj, "prefix", at), True, _limit(obj, at, *limits))
        case _:  # delete: a key, or a prefix
            if any(name in obj for name in _PREFIX):
                if any(name in obj for name in _KEY):
                    raise TxnFormatError(f"{at}: delete a key or a prefix, not both")
                return DeletePrefixCommand(_bytes(obj, "prefix", at))
            return DeleteCommand(_key(obj, at))


def _lease(obj: dict[str, Any], where: str) -> int:
    """A put's lease: 0 (none) when absent, else a positive int64."""
    lease = obj.get("lease", 0)
    if type(lease) is not int or not 0 <= lease <= MAX_INT or ("lease" in obj and not lease):
        raise TxnFormatError(f"{where}.lease: a lease id is an integer from 1 to {MAX_INT}")
    return lease


def _limit(obj: dict[str, Any], where: str, default: int | None, maximum: int | None) -> int | None:
    if "limit" not in obj:
        return default
    limit = obj["limit"]
    if type(limit) is not int or not 1 <= limit <= (maximum or MAX_INT):
        most = f"..{maximum}" if maximum else " or more"
        raise TxnFormatError(f"{where}.limit: a limit is an integer 1{most}")
    return limit


# -- writing ---------------------------------------------------------------------------------


def txn_to_json(txn: TxnCommand) -> dict[str, Any]:
    """The body of ``POST /v1/txn``."""
    return {
        "compare": [_compare_json(c) for c in txn.compares],
        "success": [_op_json(op) for op in txn.success],
        "failure": [_op_json(op) for op in txn.failure],
    }


def _compare_json(c: Compare) -> dict[str, Any]:
    against = bytes_field("value", c.value) if isinstance(c.value, bytes) else {"value": c.value}
    return {
        **bytes_field("key", c.key),
        "target": NAMES[c.target],
        "op": SYMBOLS[c.op],
        **against,
    }


def _op_json(op: TxnOp) -> dict[str, Any]:
    match op:
        case PutCommand(key, data, _, lease):
            leased = {"lease": lease} if lease else {}
            return {"put": {**bytes_field("key", key), **bytes_field("value", data), **leased}}
        case RangeOp(key, True, limit):
            limited = {} if limit is None else {"limit": limit}
            return {"range": {**bytes_field("prefix", key), **limited}}
        case RangeOp(key):
            return {"get": bytes_field("key", key)}
        case DeleteCommand(key):
            return {"delete": bytes_field("key", key)}
        case DeletePrefixCommand(prefix):
            return {"delete": bytes_field("prefix", prefix)}
