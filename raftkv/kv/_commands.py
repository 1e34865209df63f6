"""The key-value store's commands: what is proposed, as CBOR, and how it is read back.

Command format, CBOR, version ``COMMAND_VERSION``::

    [1, 1, key, value, if_revision | null]      put
    [1, 2, key, if_revision | null]             delete

``encode_put`` and ``encode_delete`` check the node's limits first; ``decode_command`` accepts
exactly a well-formed command and raises ``BadCommand`` for anything else (the state machine
turns that into an ``InvalidCommand`` result: a bad entry in the log must not stop the cluster).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Final

import cbor2

from ._limits import (
    DEFAULT_MAX_KEY_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    MAX_INT,
    check_key,
    check_value_size,
)

__all__ = [
    "COMMAND_VERSION",
    "BadCommand",
    "Command",
    "DeleteCommand",
    "PutCommand",
    "decode_command",
    "encode_command",
    "encode_delete",
    "encode_put",
]

COMMAND_VERSION: Final = 1
_OP_PUT: Final = 1
_OP_DELETE: Final = 2


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


@dataclass(frozen=True, slots=True)
class DeleteCommand:
    key: bytes
    if_revision: int | None = None


Command = PutCommand | DeleteCommand


def encode_command(command: Command) -> bytes:
    """The bytes to propose for ``command`` (no limits checked; see ``encode_put``)."""
    match command:
        case PutCommand(key, value, if_revision):
            return cbor2.dumps([COMMAND_VERSION, _OP_PUT, key, value, if_revision])
        case DeleteCommand(key, if_revision):
            return cbor2.dumps([COMMAND_VERSION, _OP_DELETE, key, if_revision])


def encode_put(
    key: bytes,
    value: bytes,
    *,
    if_revision: int | None = None,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> bytes:
    """A checked put command, ready to propose.

    >>> decode_command(encode_put(b"k", b"v", if_revision=0))
    PutCommand(key=b'k', value=b'v', if_revision=0)
    """
    check_key(key, max_key_bytes)
    if not isinstance(value, bytes):
        raise TypeError(f"a value must be bytes, not {type(value).__name__}")
    check_value_size(len(value), max_value_bytes)
    _check_if_revision(if_revision)
    return encode_command(PutCommand(key, value, if_revision))


def encode_delete(
    key: bytes, *, if_revision: int | None = None, max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
) -> bytes:
    """A checked delete command, ready to propose."""
    check_key(key, max_key_bytes)
    _check_if_revision(if_revision)
    return encode_command(DeleteCommand(key, if_revision))


class BadCommand(ValueError):
    pass


def decode_command(data: bytes) -> Command:
    """The command in ``data``; ``ValueError`` if it is not exactly a well-formed command."""
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream, max_depth=4).decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise BadCommand(f"undecodable CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise BadCommand(f"{len(data) - stream.tell()} trailing bytes after the command")
    if type(item) is not list or len(item) < 2:
        raise BadCommand("a command must be an array [version, op, ...]")
    version, op, *args = item
    if type(version) is not int or version != COMMAND_VERSION:
        raise BadCommand(f"unsupported command version {version!r:.20}")
    if type(op) is int and op == _OP_PUT and len(args) == 3:
        key, value, if_revision = args
        if type(value) is not bytes:
            raise BadCommand("a put's value must be a byte string")
        return PutCommand(_decode_key(key), value, _decode_if_revision(if_revision))
    if type(op) is int and op == _OP_DELETE and len(args) == 2:
        key, if_revision = args
        return DeleteCommand(_decode_key(key), _decode_if_revision(if_revision))
    raise BadCommand(f"unknown operation {op!r:.20} with {len(args)} arguments")


def _decode_key(v: Any) -> bytes:
    if type(v) is not bytes or not v:
        raise BadCommand("a key must be a non-empty byte string")
    return v


def _decode_if_revision(v: Any) -> int | None:
    if v is None or (type(v) is int and 0 <= v <= MAX_INT):
        return v
    raise BadCommand(f"bad if_revision {v!r:.20}")
