"""``Counters``: the mutable tally behind ``Transport.statistics()``."""

from __future__ import annotations

from collections import Counter

from ._base import Refusal, TransportStatistics

__all__ = ["Counters"]


class Counters:
    __slots__ = (
        "messages_dropped",
        "messages_received",
        "messages_sent",
        "refused",
        "snapshots_failed",
        "snapshots_received",
        "snapshots_sent",
        "writes",
    )

    def __init__(self) -> None:
        self.messages_sent = 0
        self.messages_received = 0
        self.messages_dropped = 0
        self.writes = 0
        self.snapshots_sent = 0
        self.snapshots_failed = 0
        self.snapshots_received = 0
        self.refused: Counter[Refusal] = Counter()

    def freeze(self) -> TransportStatistics:
        return TransportStatistics(
            messages_sent=self.messages_sent,
            messages_received=self.messages_received,
            messages_dropped=self.messages_dropped,
            writes=self.writes,
            snapshots_sent=self.snapshots_sent,
            snapshots_failed=self.snapshots_failed,
            snapshots_received=self.snapshots_received,
            refused=dict(self.refused),
        )
