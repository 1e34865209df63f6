"""Peer transports: the ``Transport`` protocol and its implementations.

``MemoryNetwork`` (tests and simulations, with injectable faults) and ``open_tcp_transport``
(framed CBOR over TCP, optional mutual TLS). Both pass ``tests/transport/test_conformance.py``.
"""

from ._base import (
    Inbound,
    Refusal,
    Removed,
    SnapshotStatus,
    Transport,
    TransportEvent,
    TransportStatistics,
    Unreachable,
)
from ._memory import MemoryNetwork, MemoryTransport, NetworkStatistics
from ._options import TcpOptions
from ._tcp import TcpTransport, open_tcp_transport
from ._url import format_peer_url, normalize_peer_url, parse_peer_url

__all__ = [
    "Inbound",
    "MemoryNetwork",
    "MemoryTransport",
    "NetworkStatistics",
    "Refusal",
    "Removed",
    "SnapshotStatus",
    "TcpOptions",
    "TcpTransport",
    "Transport",
    "TransportEvent",
    "TransportStatistics",
    "Unreachable",
    "format_peer_url",
    "normalize_peer_url",
    "open_tcp_transport",
    "parse_peer_url",
]
