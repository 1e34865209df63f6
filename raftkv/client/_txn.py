"""Transactions: ``client.txn()`` builds one, ``commit()`` sends it (``POST /v1/txn``).

    from raftkv.client import Client, get, put, value, version

    with Client("http://127.0.0.1:12380") as kv:
        r = (
            kv.txn()
            .compare(value("config/mode") == "blue", version("lock") == 0)
            .then(put("config/mode", "green"), put("lock", "me"))
            .otherwise(get("config/mode"))
            .commit()
        )
        if not r.succeeded:
            current = r.responses[0].kv      # TxnGetResult

Every compare is evaluated on the store as it is when the transaction applies; if all hold,
the ``then`` operations run, else the ``otherwise`` ones, all at one revision. Compares:
``value(key)``, ``version(key)``, ``create_revision(key)``, ``mod_revision(key)`` with ``==``,
``!=``, ``<``, ``>`` (an absent key has version and revisions 0, and no value compares true
with it, as in etcd). Operations: ``put(key, value, lease=)``, ``get(key)``,
``get_prefix(prefix, limit=)``, ``delete(key)``, ``delete_prefix(prefix)``; a branch may not
write one key twice. They are ``raftkv.kv`` commands, so a ``TxnCommand`` built elsewhere goes
through as well (``.compare(*cmd.compares).then(*cmd.success)...``). The builder is immutable:
each call returns a new one.

The JSON sent is the one docs/api.md describes (``raftkv.kv.txn_to_json`` writes it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from ..kv import (
    Compare,
    CompareOp,
    CompareTarget,
    DeleteCommand,
    DeletePrefixCommand,
    PutCommand,
    RangeOp,
    TxnCommand,
    TxnOp,
    WireFormatError,
    key_value_from_json,
)
from ._models import (
    TxnDeleteResult,
    TxnGetResult,
    TxnOpResult,
    TxnPutResult,
    TxnRangeResult,
)
from ._wire import Key, key_bytes, to_bytes

__all__ = [
    "Target",
    "Txn",
    "create_revision",
    "delete",
    "delete_prefix",
    "get",
    "get_prefix",
    "is_read_only",
    "mod_revision",
    "put",
    "txn_responses_from_json",
    "value",
    "version",
]

T = TypeVar("T")


# -- compares -----------------------------------------------------------------------------------


class Target:
    """One side of a compare: a key's value, version, create or mod revision. Comparing it
    (``==``, ``!=``, ``<``, ``>``) makes a ``raftkv.kv.Compare``."""

    __slots__ = ("key", "target")
    __hash__ = None  # type: ignore[assignment]  # == builds a Compare, not a truth

    def __init__(self, key: Key, target: CompareTarget) -> None:
        self.key = key_bytes(key)
        self.target = target

    def __repr__(self) -> str:
        return f"{self.target.name.lower()}({self.key!r})"

    def _compare(self, op: CompareOp, other: object) -> Compare:
        if self.target is CompareTarget.VALUE:
            if not isinstance(other, str | bytes):
                raise TypeError(f"a value compares with str or bytes, not {type(other).__name__}")
            return Compare(self.key, self.target, op, to_bytes(other, "value"))
        if type(other) is not int or other < 0:
            raise TypeError(f"a {self.target.name.lower()} compares with an integer >= 0")
        return Compare(self.key, self.target, op, other)

    def __eq__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare(CompareOp.EQUAL, other)

    def __ne__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare(CompareOp.NOT_EQUAL, other)

    def __lt__(self, other: object) -> Compare:
        return self._compare(CompareOp.LESS, other)

    def __gt__(self, other: object) -> Compare:
        return self._compare(CompareOp.GREATER, other)


def value(key: Key) -> Target:
    """The key's value: ``value("k") == "v"`` (an absent key's value compares true with
    nothing)."""
    return Target(key, CompareTarget.VALUE)


def version(key: Key) -> Target:
    """How many times the key was put since it was created (0: it does not exist)."""
    return Target(key, CompareTarget.VERSION)


def create_revision(key: Key) -> Target:
    """The revision that created the key (0: it does not exist)."""
    return Target(key, CompareTarget.CREATE_REVISION)


def mod_revision(key: Key) -> Target:
    """The revision that last put the key (0: it does not exist)."""
    return Target(key, CompareTarget.MOD_REVISION)


# -- operations ---------------------------------------------------------------------------------


def put(key: Key, value: Key, *, lease: int = 0) -> PutCommand:
    """Write ``value`` under ``key`` (attached to ``lease`` if given; a put without one detaches
    the key from its lease)."""
    return PutCommand(key_bytes(key), to_bytes(value, "value"), None, lease)


def get(key: Key) -> RangeOp:
    """Read one key (``TxnGetResult``)."""
    return RangeOp(key_bytes(key))


def get_prefix(prefix: Key = b"", *, limit: int | None = None) -> RangeOp:
    """Read the keys under ``prefix`` in key order, at most ``limit`` of them (None: the
    server's listing default) (``TxnRangeResult``)."""
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ValueError(f"limit must be an integer >= 1, not {limit!r}")
    return RangeOp(to_bytes(prefix, "prefix"), True, limit)


def delete(key: Key) -> DeleteCommand:
    return DeleteCommand(key_bytes(key))


def delete_prefix(prefix: Key) -> DeletePrefixCommand:
    """Delete every key under ``prefix`` (empty: every key)."""
    return DeletePrefixCommand(to_bytes(prefix, "prefix"))


_OPS = (PutCommand, DeleteCommand, DeletePrefixCommand, RangeOp)
_EMPTY = TxnCommand()


def is_read_only(txn: TxnCommand) -> bool:
    """Whether no branch of ``txn`` writes: sending it twice cannot change anything."""
    return all(isinstance(op, RangeOp) for op in (*txn.success, *txn.failure))


@dataclass(frozen=True, slots=True)
class Txn(Generic[T]):
    """A transaction being built; ``commit()`` sends it (awaitable from an ``AsyncClient``)."""

    send: Callable[[TxnCommand], T]
    command: TxnCommand = _EMPTY  # (immutable: safe to share)

    def compare(self, *compares: Compare) -> Txn[T]:
        for c in compares:
            if not isinstance(c, Compare):
                raise TypeError(f"expected a compare such as value('k') == 'v', not {c!r:.60}")
        return replace(
            self, command=replace(self.command, compares=self.command.compares + compares)
        )

    def then(self, *ops: TxnOp) -> Txn[T]:
        """The operations to run when every compare holds."""
        _check_ops(ops)
        return replace(self, command=replace(self.command, success=self.command.success + ops))

    def otherwise(self, *ops: TxnOp) -> Txn[T]:
        """The operations to run when a compare does not hold."""
        _check_ops(ops)
        return replace(self, command=replace(self.command, failure=self.command.failure + ops))

    def commit(self) -> T:
        return self.send(self.command)


def _check_ops(ops: tuple[TxnOp, ...]) -> None:
    for op in ops:
        if not isinstance(op, _OPS):
            raise TypeError(f"expected an operation such as put('k', 'v'), not {op!r:.60}")
        if isinstance(op, PutCommand) and op.if_revision is not None:
            raise ValueError("a put in a transaction takes no if_revision: use compares")


def txn_responses_from_json(body: Any) -> tuple[bool, int, tuple[TxnOpResult, ...]]:
    """``(succeeded, revision, responses)`` from the answer to ``POST /v1/txn``."""
    if not isinstance(body, dict) or not isinstance(body.get("responses"), list):
        raise WireFormatError("expected {'succeeded': bool, 'revision': n, 'responses': [...]}")
    succeeded, revision = body.get("succeeded"), body.get("revision")
    if type(succeeded) is not bool or type(revision) is not int:
        raise WireFormatError("expected 'succeeded' as a boolean and 'revision' as an integer")
    return succeeded, revision, tuple(_result(r) for r in body["responses"])


def _result(obj: Any) -> TxnOpResult:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise WireFormatError("expected one of {'put': ...}, {'get': ...}, ... per response")
    ((kind, args),) = obj.items()
    if not isinstance(args, dict):
        raise WireFormatError(f"expected a JSON object in a {kind!r:.20} response")
    match kind:
        case "put" if type(args.get("revision")) is int:
            prev = args.get("prev_kv")
            return TxnPutResult(
                args["revision"], None if prev is None else key_value_from_json(prev)
            )
        case "get" if isinstance(args.get("kvs"), list):
            return TxnGetResult(tuple(key_value_from_json(kv) for kv in args["kvs"]))
        case "range" if isinstance(args.get("kvs"), list) and type(args.get("more")) is bool:
            kvs = tuple(key_value_from_json(kv) for kv in args["kvs"])
            return TxnRangeResult(kvs, args["more"])
        case "delete" if type(args.get("deleted")) is int:
            return TxnDeleteResult(args["deleted"])
    raise WireFormatError(f"unexpected transaction response {obj!r:.80}")
