"""How the runtime wraps application data inside log entries and snapshots.

Every proposal travels as ``origin (u64) | sequence (u64) | command``: the node that proposed it
recognises its own entries when it applies them, wherever they were appended (a follower's
proposal is forwarded to the leader and the follower never learns its index up front).

Sequence number 0 is the runtime's own: a member publishing its client URL (CBOR
``{"client_url": url}``), so that every member can tell clients where the others serve.

A snapshot carries the member tables beside the application's bytes, so that a node restored
from a snapshot knows where its peers are, and which ids were removed (never to be reused).
Version 3, written since, is a CBOR head ``[3, {id: peer_url}, {id: client_url}, [removed id,
...]]`` followed by the application's bytes to the end, unframed: it is written as the state
machine serializes itself (``encode_snapshot_head``) and read as a stream (``read_snapshot_head``),
never held whole. Version 2, CBOR ``[2, {id: peer_url}, app_bytes, {id: client_url}, [removed
id, ...]]``, and version 1, without removed ids (``[1, {id: peer_url}, app_bytes, {id:
client_url}]``), still read.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import cbor2

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
    "encode_snapshot_head",
    "read_snapshot_head",
]

ATTRIBUTES_SEQ = 0

_HEADER = struct.Struct(">QQ")
_SNAPSHOT_VERSION = 2
_STREAM_VERSION = 3
_STREAM_HEAD = b"\x84\x03"  # an array of four items, the first 3: a version 3 head


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


def encode_snapshot_head(tables: MemberTables) -> bytes:
    """The start of a version 3 snapshot; the application's bytes follow it, as they come."""
    return dumps([_STREAM_VERSION, tables.peer_urls, tables.client_urls, sorted(tables.removed)])


def read_snapshot_head(stream: io.BufferedReader) -> tuple[MemberTables, IO[bytes]]:
    """(member tables, a stream of the application's bytes) of the snapshot ``stream`` holds:
    for version 3, ``stream`` itself, positioned after the head (nothing read beyond it); an
    older snapshot is read whole first. ``CodecError`` if it is not a raftkv snapshot."""
    if stream.peek(2)[:2] != _STREAM_HEAD:
        tables, app = decode_snapshot(stream.read())
        return tables, io.BytesIO(app)
    try:
        head: Any = cbor2.CBORDecoder(stream, max_depth=3).decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise CodecError(f"undecodable snapshot head: {exc}") from None
    return _stream_tables(head), stream


def _stream_tables(head: Any) -> MemberTables:
    if type(head) is not list or len(head) != 4 or head[0] != _STREAM_VERSION:
        raise CodecError("not a raftkv snapshot")
    return MemberTables(_url_table(head[1]), _url_table(head[2]), _ids(head[3]))


def decode_snapshot(data: bytes) -> tuple[MemberTables, bytes]:
    """(member tables, application bytes)."""
    if data[:2] == _STREAM_HEAD:
        stream = io.BytesIO(data)
        try:
            head: Any = cbor2.CBORDecoder(stream, max_depth=3).decode()
        except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise CodecError(f"undecodable snapshot head: {exc}") from None
        return _stream_tables(head), data[stream.tell() :]
    value = loads(data)
    if type(value) is not list or not value or type(value[2 if len(value) > 2 else 0]) is not bytes:
        raise CodecError("not a raftkv snapshot")
    if value[0] == 1 and len(value) == 4:
        return MemberTables(_url_table(value[1]), _url_table(value[3])), value[2]
    if value[0] == _SNAPSHOT_VERSION and len(value) == 5:
        return MemberTables(_url_table(value[1]), _url_table(value[3]), _ids(value[4])), value[2]
    raise CodecError("not a raftkv snapshot")
