"""``TcpOptions``: the TCP transport's limits and timings."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TcpOptions"]

_MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """Limits and timings of a TCP transport; the defaults suit a LAN cluster.

    Sizes are bytes, times seconds. ``max_frame_size`` bounds what a peer may send us in one
    frame (and what we send): keep it above the core's largest message and above
    ``snapshot_chunk_size`` (plus a little framing).
    """

    queue_size: int = 4096  # messages waiting per peer; beyond it they are dropped
    max_frame_size: int = 16 * _MiB
    batch_bytes: int = 1 * _MiB  # a write takes queued messages up to about this much
    snapshot_chunk_size: int = 1 * _MiB
    max_snapshot_size: int = 1 << 34  # a peer announcing more is refused
    connect_timeout: float = 5.0
    handshake_timeout: float = 5.0  # TLS plus hello, each side
    backoff_initial: float = 0.05  # the first reconnect delay, then doubled per failure
    backoff_max: float = 2.0
    events_buffer: int = 1024

    def __post_init__(self) -> None:
        for name in ("queue_size", "max_frame_size", "batch_bytes", "snapshot_chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TcpOptions.{name} must be >= 1")
        if self.snapshot_chunk_size + 64 > self.max_frame_size:
            raise ValueError("TcpOptions.snapshot_chunk_size must leave room in max_frame_size")
        if self.events_buffer < 1 or self.max_snapshot_size < 0:
            raise ValueError("TcpOptions.events_buffer must be >= 1, max_snapshot_size >= 0")
        if min(self.connect_timeout, self.handshake_timeout) <= 0:
            raise ValueError("TcpOptions timeouts must be > 0")
        if not 0 < self.backoff_initial <= self.backoff_max:
            raise ValueError("TcpOptions needs 0 < backoff_initial <= backoff_max")
