"""How the runtime wraps application data inside log entries and snapshots.

Every proposal travels as ``origin (u64) | sequence (u64) | command``: the node that proposed it
recognises its own entries when it applies them, wherever they were appended (a follower's
proposal is forwarded to the leader and the follower never learns its index up front).

A snapshot carries the member URLs beside the application's bytes, so that a node restored
from a snapshot knows where its peers are: CBOR ``[version, {id: url}, app_bytes]``.
"""

from __future__ import annotations

import struct

from ._codec import CodecError, dumps, loads

__all__ = ["decode_proposal", "decode_snapshot", "encode_proposal", "encode_snapshot"]

_HEADER = struct.Struct(">QQ")
_SNAPSHOT_VERSION = 1


def encode_proposal(origin: int, seq: int, command: bytes) -> bytes:
    return _HEADER.pack(origin, seq) + command


def decode_proposal(data: bytes) -> tuple[int, int, bytes] | None:
    """(origin, seq, command), or None for an entry that is not a proposal (the leader's no-op)."""
    if len(data) < _HEADER.size:
        return None
    origin, seq = _HEADER.unpack_from(data)
    return origin, seq, data[_HEADER.size :]


def encode_snapshot(members: dict[int, str], app: bytes) -> bytes:
    return dumps([_SNAPSHOT_VERSION, members, app])


def decode_snapshot(data: bytes) -> tuple[dict[int, str], bytes]:
    value = loads(data)
    if (
        type(value) is not list
        or len(value) != 3
        or value[0] != _SNAPSHOT_VERSION
        or type(value[1]) is not dict
        or type(value[2]) is not bytes
    ):
        raise CodecError("not a raftkv snapshot")
    members = value[1]
    if not all(type(k) is int and type(v) is str for k, v in members.items()):
        raise CodecError("bad member table in snapshot")
    return dict(members), value[2]
