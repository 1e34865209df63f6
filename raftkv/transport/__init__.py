"""Peer transports: the ``Transport`` protocol and its implementations."""

from ._base import Inbound, Removed, SnapshotStatus, Transport, TransportEvent, Unreachable

__all__ = ["Inbound", "Removed", "SnapshotStatus", "Transport", "TransportEvent", "Unreachable"]
