"""How the runtime wraps application data inside log entries and snapshots.

Every proposal travels as ``origin (u64) | sequence (u64) | command``: the node that proposed it
recognises its own entries when it applies them, wherever they were appended (a follower's
proposal is forwarded to the leader and the follower never learns its index up front).

Sequence number 0 is the runtime's own: a member publishing its client URL (CBOR
``{"client_url": url}``), so that every member can tell clients where the others serve.

A snapshot carries the member tables beside the application's bytes, so that a node restored
from a snapshot knows where its peers are, and which ids were removed (never to be reused):
CBOR ``[2, {id: peer_url}, app_bytes, {id: client_url}, [removed id, ...]]``. Version 1 had no
removed ids: ``[1, {id: peer_url}, app_bytes, {id: client_url}]``; it still reads.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ._codec import CodecError, dumps, loads

__all__ = [
    "ATTRIBUTES_SEQ",
    "MemberTables",
    "decode_attributes",
    "decode_proposal",
    "decode_snapshot",
    "encode_attributes",
    "encode_proposal",
    "encode_snapshot",
]

ATTRIBUTES_SEQ = 0

_HEADER = struct.Struct(">QQ")
_SNAPSHOT_VERSION = 2


def encode_proposal(origin: int, seq: int, command: bytes) -> bytes:
    return _HEADER.pack(origin, seq) + command


def decode_proposal(data: bytes) -> tuple[int, int, bytes] | None:
    """(origin, seq, command), or None for an entry that is not a proposal (the leader's no-op)."""
    if len(data) < _HEADER.size:
        return None
    origin, seq = _HEADER.unpack_from(data)
    return origin, seq, data[_HEADER.size :]


def encode_attributes(client_url: str) -> bytes:
    return dumps({"client_url": client_url})


def decode_attributes(data: bytes) -> str | None:
    """The published client URL, or None if the command is malformed (ignored everywhere)."""
    try:
        value = loads(data)
    except CodecError:
        return None
    if type(value) is not dict or type(value.get("client_url")) is not str:
        return None
    url: str = value["client_url"]
    return url


@dataclass(frozen=True, slots=True)
class MemberTables:
    """What a snapshot says of the members beside the application's state."""

    peer_urls: dict[int, str]
    client_urls: dict[int, str]
    removed: frozenset[int] = frozenset()


def encode_snapshot(tables: MemberTables, app_parts: Sequence[bytes]) -> bytes:
    """The snapshot of the application bytes ``b"".join(app_parts)``, copying them once (the
    same bytes as ``dumps([2, peer_urls, app, client_urls, sorted(removed)])``)."""
    size = sum(len(p) for p in app_parts)
    head = b"\x85" + dumps(_SNAPSHOT_VERSION) + dumps(tables.peer_urls) + _byte_string_head(size)
    tail = dumps(tables.client_urls) + dumps(sorted(tables.removed))
    return b"".join([head, *app_parts, tail])


def _byte_string_head(size: int) -> bytes:
    """The shortest CBOR head of a byte string of ``size`` bytes (major type 2)."""
    if size < 24:
        return bytes([0x40 | size])
    for info, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if size < 1 << (8 * width):
            return bytes([0x40 | info]) + size.to_bytes(width, "big")
    raise ValueError(f"a snapshot of {size} bytes is too large")


def _url_table(v: object) -> dict[int, str]:
    if type(v) is not dict or not all(type(k) is int and type(u) is str for k, u in v.items()):
        raise CodecError("bad member table in snapshot")
    return dict(v)


def _ids(v: object) -> frozenset[int]:
    if type(v) is not list or not all(type(i) is int and i >= 1 for i in v):
        raise CodecError("bad removed-member list in snapshot")
    return frozenset(v)


def decode_snapshot(data: bytes) -> tuple[MemberTables, bytes]:
    """(member tables, application bytes)."""
    value = loads(data)
    if type(value) is not list or not value or type(value[2 if len(value) > 2 else 0]) is not bytes:
        raise CodecError("not a raftkv snapshot")
    if value[0] == 1 and len(value) == 4:
        return MemberTables(_url_table(value[1]), _url_table(value[3])), value[2]
    if value[0] == _SNAPSHOT_VERSION and len(value) == 5:
        return MemberTables(_url_table(value[1]), _url_table(value[3]), _ids(value[4])), value[2]
    raise CodecError("not a raftkv snapshot")
