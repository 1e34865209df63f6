"""The peer handshake: who is talking to whom, checked before any message is read.

The dialing node sends one frame, ``["raftkv-peer", PROTOCOL_VERSION, cluster_id, CODEC_VERSION,
src, dst]``; the listening node answers ``["ok"]`` or ``["refused", reason, detail]`` (reason is a
``Refusal`` value) and closes. After an ``ok`` the listener sends nothing more, except a last
``["refused", "removed", ...]`` when it removes the dialer while connected.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from .._codec import CODEC_VERSION, CodecError, loads
from .._errors import TransportError
from ._base import Refusal
from ._framing import ProtocolViolation, encode_frame

__all__ = [
    "MAX_HANDSHAKE_FRAME",
    "PROTOCOL_VERSION",
    "HandshakeRefused",
    "Hello",
    "check_reply",
    "decode_hello",
    "encode_accept",
    "encode_hello",
    "encode_refusal",
    "judge",
]

MAGIC = "raftkv-peer"
PROTOCOL_VERSION = 1
MAX_CLUSTER_ID = 255
# Handshake frames are tiny; a larger length prefix is garbage and refused before it is read.
MAX_HANDSHAKE_FRAME = 1024


class HandshakeRefused(TransportError):
    """The peer refused our connection; ``reason`` is a ``Refusal`` value (or a newer one)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"refused by peer: {reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Hello:
    cluster_id: str
    src: int
    dst: int
    protocol_version: int = PROTOCOL_VERSION
    codec_version: int = CODEC_VERSION


def encode_hello(h: Hello) -> bytes:
    return encode_frame([MAGIC, h.protocol_version, h.cluster_id, h.codec_version, h.src, h.dst])


def _is_int(v: Any, lo: int) -> bool:
    return type(v) is int and lo <= v < 1 << 63


def decode_hello(payload: bytes) -> Hello:
    """The hello in ``payload``; ``ProtocolViolation`` if it is anything else."""
    try:
        v = loads(payload)
    except CodecError:
        raise ProtocolViolation(Refusal.BAD_HANDSHAKE, "undecodable hello") from None
    if type(v) is not list or len(v) != 6 or v[0] != MAGIC:
        raise ProtocolViolation(Refusal.BAD_HANDSHAKE, "not a raftkv peer hello")
    _, protocol, cluster, codec, src, dst = v
    if not (_is_int(protocol, 0) and _is_int(codec, 0)):
        raise ProtocolViolation(Refusal.BAD_HANDSHAKE, "malformed versions")
    if protocol != PROTOCOL_VERSION or codec != CODEC_VERSION:
        raise ProtocolViolation(
            Refusal.INCOMPATIBLE,
            f"protocol {protocol}, codec {codec}; "
            f"this node speaks protocol {PROTOCOL_VERSION}, codec {CODEC_VERSION}",
        )
    if type(cluster) is not str or len(cluster) > MAX_CLUSTER_ID:
        raise ProtocolViolation(Refusal.BAD_HANDSHAKE, "malformed cluster id")
    if not (_is_int(src, 1) and _is_int(dst, 1)):
        raise ProtocolViolation(Refusal.BAD_HANDSHAKE, "malformed node ids")
    return Hello(cluster, src, dst, protocol, codec)


def judge(
    hello: Hello,
    *,
    cluster_id: str,
    node_id: int,
    members: Container[int],
    removed: Container[int],
) -> ProtocolViolation | None:
    """Why ``hello`` must be refused by node ``node_id``, or None to accept it."""
    if hello.cluster_id != cluster_id:
        return ProtocolViolation(
            Refusal.WRONG_CLUSTER, f"cluster {hello.cluster_id!r:.80}, expected {cluster_id!r}"
        )
    if hello.dst != node_id:
        return ProtocolViolation(
            Refusal.WRONG_RECEIVER, f"addressed to node {hello.dst}, this is node {node_id}"
        )
    if hello.src in removed:
        return ProtocolViolation(Refusal.REMOVED, f"node {hello.src} was removed from the cluster")
    if hello.src == node_id or hello.src not in members:
        return ProtocolViolation(Refusal.UNKNOWN_SENDER, f"node {hello.src} is not a known member")
    return None


def encode_accept() -> bytes:
    return encode_frame(["ok"])


def encode_refusal(reason: Refusal, detail: str) -> bytes:
    return encode_frame(["refused", str(reason), detail])


def check_reply(payload: bytes) -> None:
    """Return if ``payload`` accepts us; raise ``HandshakeRefused`` or ``ProtocolViolation``."""
    try:
        v = loads(payload)
    except CodecError:
        raise ProtocolViolation(Refusal.BAD_HANDSHAKE, "undecodable handshake reply") from None
    if v == ["ok"]:
        return
    if (
        type(v) is list
        and len(v) == 3
        and v[0] == "refused"
        and type(v[1]) is str
        and type(v[2]) is str
    ):
        raise HandshakeRefused(v[1], v[2])
    raise ProtocolViolation(Refusal.BAD_HANDSHAKE, "unexpected handshake reply")
