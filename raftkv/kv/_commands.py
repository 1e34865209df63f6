"""The key-value store's commands: what is proposed, as CBOR, and how it is read back.

Command format, CBOR, version ``COMMAND_VERSION`` (the log outlives the code: these encodings
must keep decoding)::

    [1, 1, key, value, if_revision | null]             put
    [1, 1, key, value, if_revision | null, lease]      put attached to a lease
    [1, 2, key, if_revision | null]                    delete
    [1, 4, [compare...], [op...], [op...]]             transaction: compares, success, failure
    [1, 5, prefix]                                     delete every key under a prefix
    [1, 6, revision]                                   compact the history up to a revision
    [1, 8, lease, ttl]                                 grant a lease (ttl in seconds)
    [1, 9, lease]                                      revoke a lease: delete its keys
    [1, 10, [[lease, remaining], ...]]                 checkpoint remaining TTLs (0: clear)
    [1, 11, user | null, command]                      a client's command, with its identity
    [1, 12, kind, ...]                                 an auth change (``_auth_commands``)

    compare: [key, target, op, value]   target 0 value | 1 version | 2 create | 3 mod revision
                                        op 0 == | 1 != | 2 < | 3 >; value bytes or an integer
    op:      [1, key, value, lease]     put
             [2, key]                   delete
             [5, prefix]                delete a prefix
             [7, key, is_prefix, limit | null]   read a key, or the keys under a prefix

``encode_command`` writes a command; the ``encode_*`` helpers check the node's limits first.
``decode_command`` accepts exactly a well-formed command and raises ``BadCommand`` for anything
else (the state machine turns that into an ``InvalidCommand`` result: a bad entry in the log
must not stop the cluster).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import cbor2

from ._auth_commands import (
    OP_AS_USER,
    OP_AUTH,
    AuthCommand,
    decode_auth_command,
    encode_auth_command,
)
from ._limits import (
    DEFAULT_MAX_KEY_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    MAX_INT,
    Limits,
    check_key,
    check_prefix,
    check_value_size,
)

__all__ = [
    "COMMAND_VERSION",
    "AsUser",
    "BadCommand",
    "Command",
    "CompactCommand",
    "Compare",
    "CompareOp",
    "CompareTarget",
    "DeleteCommand",
    "DeletePrefixCommand",
    "InvalidTxn",
    "LeaseCheckpointCommand",
    "LeaseCommand",
    "LeaseGrantCommand",
    "LeaseRevokeCommand",
    "PutCommand",
    "RangeOp",
    "TxnCommand",
    "TxnOp",
    "check_txn",
    "decode_command",
    "encode_command",
    "encode_delete",
    "encode_put",
]

COMMAND_VERSION: Final = 1
_OP_PUT: Final = 1
_OP_DELETE: Final = 2
_OP_TXN: Final = 4
_OP_DELETE_PREFIX: Final = 5
_OP_COMPACT: Final = 6
_OP_RANGE: Final = 7
_OP_LEASE_GRANT: Final = 8
_OP_LEASE_REVOKE: Final = 9
_OP_LEASE_CHECKPOINT: Final = 10


class BadCommand(ValueError):
    """Bytes that are not exactly a well-formed command."""


class InvalidTxn(ValueError):
    """A transaction the store refuses as a whole (too many operations, a key written twice)."""


def _check_if_revision(if_revision: int | None) -> None:
    if if_revision is not None and (
        type(if_revision) is not int or not 0 <= if_revision <= MAX_INT
    ):
        raise ValueError(f"if_revision must be an integer >= 0, not {if_revision!r}")


# -- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PutCommand:
    key: bytes
    value: bytes
    # None: unconditional; 0: only if the key does not exist; n: only if its mod_revision is n.
    if_revision: int | None = None
    lease: int = 0  # the lease the key is attached to; 0: none (a put detaches it)


@dataclass(frozen=True, slots=True)
class DeleteCommand:
    key: bytes
    if_revision: int | None = None


@dataclass(frozen=True, slots=True)
class DeletePrefixCommand:
    """Delete every key that starts with ``prefix`` (b"": every key), at one revision."""

    prefix: bytes


@dataclass(frozen=True, slots=True)
class CompactCommand:
    """Forget the history before ``revision`` on every replica (it stays readable)."""

    revision: int


@dataclass(frozen=True, slots=True)
class LeaseGrantCommand:
    lease: int  # chosen by the proposer (or its caller), > 0
    ttl: int  # seconds


@dataclass(frozen=True, slots=True)
class LeaseRevokeCommand:
    lease: int


@dataclass(frozen=True, slots=True)
class LeaseCheckpointCommand:
    """The leader's record of leases' remaining TTLs, so that a new leader (or a restarted
    cluster) does not give them their full TTL again; a remaining of 0 clears it (renewed)."""

    remaining: tuple[tuple[int, int], ...]  # (lease, seconds)


class CompareTarget(IntEnum):
    VALUE = 0
    VERSION = 1
    CREATE_REVISION = 2
    MOD_REVISION = 3


class CompareOp(IntEnum):
    EQUAL = 0
    NOT_EQUAL = 1
    LESS = 2
    GREATER = 3


@dataclass(frozen=True, slots=True)
class Compare:
    """A transaction's condition on one key, as etcd's: an absent key has version and
    revisions 0, and no value compares true."""

    key: bytes
    target: CompareTarget
    op: CompareOp
    value: bytes | int  # bytes for VALUE, an integer for the others


@dataclass(frozen=True, slots=True)
class RangeOp:
    """A read inside a transaction: one key, or the keys under a prefix (at most ``limit``)."""

    key: bytes
    prefix: bool = False
    limit: int | None = None


TxnOp = PutCommand | DeleteCommand | DeletePrefixCommand | RangeOp


@dataclass(frozen=True, slots=True)
class TxnCommand:
    """All ``compares`` are evaluated; then ``success`` (all true) or ``failure`` applies, at
    one revision. Operations on the same branch never write one key twice."""

    compares: tuple[Compare, ...] = ()
    success: tuple[TxnOp, ...] = ()
    failure: tuple[TxnOp, ...] = ()


LeaseCommand = LeaseGrantCommand | LeaseRevokeCommand | LeaseCheckpointCommand
KVCommand = (
    PutCommand | DeleteCommand | DeletePrefixCommand | CompactCommand | TxnCommand | LeaseCommand
)


@dataclass(frozen=True, slots=True)
class AsUser:
    """A client's command with who sent it (``user`` None: anonymous), so that every replica
    checks it against the auth state in force when it applies (``command`` is never an
    ``AsUser`` itself)."""

    user: str | None
    command: KVCommand | AuthCommand


Command = KVCommand | AuthCommand | AsUser


def encode_command(command: Command) -> bytes:
    """The bytes to propose for ``command`` (no limits checked; see ``encode_put``)."""
    match command:
        case PutCommand(key, value, if_revision, lease):
            tail = [lease] if lease else []
            return cbor2.dumps([COMMAND_VERSION, _OP_PUT, key, value, if_revision, *tail])
        case DeleteCommand(key, if_revision):
            return cbor2.dumps([COMMAND_VERSION, _OP_DELETE, key, if_revision])
        case DeletePrefixCommand(prefix):
            return cbor2.dumps([COMMAND_VERSION, _OP_DELETE_PREFIX, prefix])
        case CompactCommand(revision):
            return cbor2.dumps([COMMAND_VERSION, _OP_COMPACT, revision])
        case LeaseGrantCommand(lease, ttl):
            return cbor2.dumps([COMMAND_VERSION, _OP_LEASE_GRANT, lease, ttl])
        case LeaseRevokeCommand(lease):
            return cbor2.dumps([COMMAND_VERSION, _OP_LEASE_REVOKE, lease])
        case LeaseCheckpointCommand(remaining):
            items = [[lease, left] for lease, left in remaining]
            return cbor2.dumps([COMMAND_VERSION, _OP_LEASE_CHECKPOINT, items])
        case TxnCommand(compares, success, failure):
            return cbor2.dumps(
                [
                    COMMAND_VERSION,
                    _OP_TXN,
                    [[c.key, int(c.target), int(c.op), c.value] for c in compares],
                    [_encode_op(op) for op in success],
                    [_encode_op(op) for op in failure],
                ]
            )
        case AsUser(user, inner):
            return as_user(user, encode_command(inner))
        case _:
            return encode_auth_command(command, COMMAND_VERSION)


def as_user(user: str | None, command: bytes) -> bytes:
    """The encoded ``command`` wrapped with the identity of the client that asked for it."""
    return cbor2.dumps([COMMAND_VERSION, OP_AS_USER, user, command])


def _encode_op(op: TxnOp) -> list[Any]:
    match op:
        case PutCommand(key, value, _, lease):
            return [_OP_PUT, key, value, lease]
        case DeleteCommand(key, _):
            return [_OP_DELETE, key]
        case DeletePrefixCommand(prefix):
            return [_OP_DELETE_PREFIX, prefix]
        case RangeOp(key, prefix, limit):
            return [_OP_RANGE, key, prefix, limit]


def encode_put(
    key: bytes,
    value: bytes,
    *,
    if_revision: int | None = None,
    lease: int = 0,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> bytes:
    """A checked put command, ready to propose.

    >>> decode_command(encode_put(b"k", b"v", if_revision=0))
    PutCommand(key=b'k', value=b'v', if_revision=0, lease=0)
    """
    check_key(key, max_key_bytes)
    if not isinstance(value, bytes):
        raise TypeError(f"a value must be bytes, not {type(value).__name__}")
    check_value_size(len(value), max_value_bytes)
    _check_if_revision(if_revision)
    _check_lease(lease)
    return encode_command(PutCommand(key, value, if_revision, lease))


def encode_delete(
    key: bytes, *, if_revision: int | None = None, max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
) -> bytes:
    """A checked delete command, ready to propose."""
    check_key(key, max_key_bytes)
    _check_if_revision(if_revision)
    return encode_command(DeleteCommand(key, if_revision))


def _check_lease(lease: int) -> None:
    if type(lease) is not int or not 0 <= lease <= MAX_INT:
        raise ValueError(f"a lease must be an integer >= 0, not {lease!r}")


def check_txn(txn: TxnCommand, limits: Limits) -> None:
    """Refuse (``InvalidTxn``, ``InvalidKey``, ``ValueTooLarge``) a transaction the store would
    not take whole: over ``limits.max_txn_ops`` operations, a key over the key limit, a value
    over the value limit, a key written twice on one branch (as etcd refuses)."""
    ops = len(txn.compares) + len(txn.success) + len(txn.failure)
    if ops > limits.max_txn_ops:
        raise InvalidTxn(f"{ops} compares and operations, over the limit of {limits.max_txn_ops}")
    for c in txn.compares:
        check_key(c.key, limits.max_key_bytes)
    for branch in (txn.success, txn.failure):
        for op in branch:
            match op:
                case PutCommand(key, value, _, lease):
                    check_key(key, limits.max_key_bytes)
                    check_value_size(len(value), limits.max_value_bytes)
                    _check_lease(lease)
                case DeletePrefixCommand(prefix) | RangeOp(prefix, True):
                    check_prefix(prefix, limits.max_key_bytes)
                case DeleteCommand(key) | RangeOp(key):
                    check_key(key, limits.max_key_bytes)
        overlap = _overlapping_write(branch)
        if overlap is not None:
            raise InvalidTxn(f"key {overlap!r:.60} is written twice in one branch")


def _overlapping_write(branch: Sequence[TxnOp]) -> bytes | None:
    """A key that two writes of ``branch`` touch, if any."""
    if not any(isinstance(op, DeletePrefixCommand) for op in branch):
        # Only single keys: distinct keys overlap in nothing (a bulk load's transactions).
        written = [op.key for op in branch if isinstance(op, (PutCommand, DeleteCommand))]
        if len(set(written)) == len(written):
            return None
    keys: set[bytes] = set()
    prefixes: list[bytes] = []
    for op in branch:
        if isinstance(op, (PutCommand, DeleteCommand)):
            if op.key in keys or any(op.key.startswith(p) for p in prefixes):
                return op.key
            keys.add(op.key)
        elif isinstance(op, DeletePrefixCommand):
            p = op.prefix
            clash = [k for k in keys if k.startswith(p)]
            clash += [q for q in prefixes if q.startswith(p) or p.startswith(q)]
            if clash:
                return clash[0]
            prefixes.append(p)
    return None


# -- decoding ------------------------------------------------------------------------------------


def decode_command(data: bytes) -> Command:
    """The command in ``data``; ``BadCommand`` if it is not exactly a well-formed command."""
    item = _decode_item(data)
    if item[1] == OP_AS_USER and len(item) == 4:
        user, inner = item[2], item[3]
        if (user is not None and type(user) is not str) or type(inner) is not bytes:
            raise BadCommand("a client command is [1, 11, user | null, command]")
        inner_item = _decode_item(inner)
        if inner_item[1] == OP_AS_USER:
            raise BadCommand("a client command inside a client command")
        return AsUser(user, _decode_plain(inner_item))
    return _decode_plain(item)


def _decode_item(data: bytes) -> list[Any]:
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream, max_depth=5).decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise BadCommand(f"undecodable CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise BadCommand(f"{len(data) - stream.tell()} trailing bytes after the command")
    if type(item) is not list or len(item) < 2:
        raise BadCommand("a command must be an array [version, op, ...]")
    version, op, *args = item
    if type(version) is not int or version != COMMAND_VERSION:
        raise BadCommand(f"unsupported command version {version!r:.20}")
    if type(op) is not int:
        raise BadCommand(f"unknown operation {op!r:.20} with {len(args)} arguments")
    return item


def _decode_plain(item: list[Any]) -> KVCommand | AuthCommand:
    _, op, *args = item
    if op == OP_AUTH:
        try:
            return decode_auth_command(args)
        except ValueError as exc:
            raise BadCommand(str(exc)) from None
    if op == _OP_PUT and len(args) in (3, 4):
        key, value, if_revision, *lease = args
        return PutCommand(
            _key(key), _value(value), _if_revision(if_revision), _lease(lease[0] if lease else 0)
        )
    if op == _OP_DELETE and len(args) == 2:
        return DeleteCommand(_key(args[0]), _if_revision(args[1]))
    if op == _OP_DELETE_PREFIX and len(args) == 1:
        return DeletePrefixCommand(_bytes(args[0], "prefix"))
    if op == _OP_COMPACT and len(args) == 1:
        return CompactCommand(_revision(args[0]))
    if op == _OP_LEASE_GRANT and len(args) == 2:
        return LeaseGrantCommand(_lease_id(args[0]), _positive(args[1], "lease TTL"))
    if op == _OP_LEASE_REVOKE and len(args) == 1:
        return LeaseRevokeCommand(_lease_id(args[0]))
    if op == _OP_LEASE_CHECKPOINT and len(args) == 1:
        items = _list(args[0], "checkpoint")
        pairs = [_list(item, "checkpoint item") for item in items]
        if any(len(p) != 2 for p in pairs):
            raise BadCommand("a checkpoint item must be [lease, remaining]")
        return LeaseCheckpointCommand(tuple((_lease_id(a), _lease(b)) for a, b in pairs))
    if op == _OP_TXN and len(args) == 3:
        compares, success, failure = (_list(a, "txn part") for a in args)
        txn = TxnCommand(
            tuple(_compare(c) for c in compares),
            tuple(_op(o) for o in success),
            tuple(_op(o) for o in failure),
        )
        for branch in (txn.success, txn.failure):
            if _overlapping_write(branch) is not None:
                raise BadCommand("a transaction branch writes one key twice")
        return txn
    raise BadCommand(f"unknown operation {op!r:.20} with {len(args)} arguments")


def _list(v: Any, what: str) -> list[Any]:
    if type(v) is not list:
        raise BadCommand(f"a {what} must be an array")
    return v


def _bytes(v: Any, what: str) -> bytes:
    if type(v) is not bytes:
        raise BadCommand(f"a {what} must be a byte string")
    return v


def _key(v: Any) -> bytes:
    if type(v) is not bytes or not v:
        raise BadCommand("a key must be a non-empty byte string")
    return v


def _value(v: Any) -> bytes:
    if type(v) is not bytes:
        raise BadCommand("a put's value must be a byte string")
    return v


def _if_revision(v: Any) -> int | None:
    if v is None or (type(v) is int and 0 <= v <= MAX_INT):
        return v
    raise BadCommand(f"bad if_revision {v!r:.20}")


def _revision(v: Any) -> int:
    if type(v) is int and 0 <= v <= MAX_INT:
        return v
    raise BadCommand(f"bad revision {v!r:.20}")


def _lease(v: Any) -> int:
    if type(v) is int and 0 <= v <= MAX_INT:
        return v
    raise BadCommand(f"bad lease {v!r:.20}")


def _lease_id(v: Any) -> int:
    return _positive(v, "lease id")


def _positive(v: Any, what: str) -> int:
    if type(v) is int and 1 <= v <= MAX_INT:
        return v
    raise BadCommand(f"bad {what} {v!r:.20}")


def _compare(v: Any) -> Compare:
    c = _list(v, "compare")
    if len(c) != 4 or type(c[1]) is not int or type(c[2]) is not int:
        raise BadCommand("a compare must be [key, target, op, value]")
    try:
        target, op = CompareTarget(c[1]), CompareOp(c[2])
    except ValueError:
        raise BadCommand(f"unknown compare target {c[1]} or op {c[2]}") from None
    value = c[3]
    if target is CompareTarget.VALUE:
        value = _bytes(value, "compared value")
    elif type(value) is not int or not 0 <= value <= MAX_INT:
        raise BadCommand(f"a compared {target.name.lower()} must be an integer >= 0")
    return Compare(_key(c[0]), target, op, value)


def _op(v: Any) -> TxnOp:
    if (  # the usual operation, a put, checked in one expression
        type(v) is list
        and len(v) == 4
        and v[0] == _OP_PUT
        and type(v[1]) is bytes
        and v[1]
        and type(v[2]) is bytes
        and type(v[3]) is int
        and 0 <= v[3] <= MAX_INT
    ):
        return PutCommand(v[1], v[2], None, v[3])
    o = _list(v, "transaction operation")
    kind, args = (o[0], o[1:]) if o else (None, [])
    if kind == _OP_PUT and len(args) == 3:
        return PutCommand(_key(args[0]), _value(args[1]), None, _lease(args[2]))
    if kind == _OP_DELETE and len(args) == 1:
        return DeleteCommand(_key(args[0]))
    if kind == _OP_DELETE_PREFIX and len(args) == 1:
        return DeletePrefixCommand(_bytes(args[0], "prefix"))
    if kind == _OP_RANGE and len(args) == 3 and type(args[1]) is bool:
        limit = args[2]
        if limit is not None and (type(limit) is not int or not 0 <= limit <= MAX_INT):
            raise BadCommand(f"bad range limit {limit!r:.20}")
        key = _bytes(args[0], "range key") if args[1] else _key(args[0])
        return RangeOp(key, args[1], limit)
    raise BadCommand(f"unknown transaction operation {kind!r:.20}")
