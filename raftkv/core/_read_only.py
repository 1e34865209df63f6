"""Pending ReadIndex requests on the leader (Raft thesis §6.4).

A read is released once a quorum of voters acknowledged a heartbeat sent *after* the request was
recorded: only then do we know no newer leader had committed anything at that time. Requests are
kept in arrival order; an ack of a later request's heartbeat also confirms every earlier one, so
a batch of reads shares a single heartbeat round.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ReadIndexStatus", "ReadOnly"]


@dataclass(slots=True)
class ReadIndexStatus:
    index: int
    context: bytes
    requester: int
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    def __init__(self) -> None:
        self._pending: dict[bytes, ReadIndexStatus] = {}
        self._queue: list[bytes] = []

    def add_request(self, index: int, context: bytes, requester: int) -> ReadIndexStatus:
        status = self._pending.get(context)
        if status is None:
            status = self._pending[context] = ReadIndexStatus(index, context, requester)
            self._queue.append(context)
        return status

    def recv_ack(self, node: int, context: bytes) -> set[int] | None:
        status = self._pending.get(context)
        if status is None:
            return None
        status.acks.add(node)
        return status.acks

    def advance(self, context: bytes) -> list[ReadIndexStatus]:
        """Release the request for ``context`` and every one queued before it."""
        if context not in self._pending:
            return []
        n = self._queue.index(context) + 1
        released = [self._pending.pop(c) for c in self._queue[:n]]
        del self._queue[:n]
        return released

    def last_pending_context(self) -> bytes | None:
        return self._queue[-1] if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)
