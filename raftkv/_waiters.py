"""What callers hand to the raft loop (inbox items) and how they wait for its answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio

from .core import ConfChange, ConfState
from .transport import TransportEvent

__all__ = [
    "ConfChangeRequest",
    "InboxItem",
    "ProposeRequest",
    "ReadBatch",
    "ReadRequest",
    "SnapshotBuilt",
    "TransferRequest",
    "Waiter",
]


class Waiter:
    """One caller waiting for the raft loop. Set at most once; later sets are ignored."""

    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def set(self, value: Any) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value


@dataclass(slots=True)
class ProposeRequest:
    seq: int
    command: bytes
    waiter: Waiter


@dataclass(slots=True)
class ReadRequest:
    waiter: Waiter


@dataclass(slots=True)
class ConfChangeRequest:
    change: ConfChange
    waiter: Waiter


@dataclass(slots=True)
class TransferRequest:
    to: int
    waiter: Waiter


@dataclass(slots=True)
class ReadBatch:
    waiters: list[Waiter]
    index: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotBuilt:
    """A snapshot of the state at ``index``, built outside the raft loop, ready to save."""

    index: int
    conf_state: ConfState
    data: bytes


InboxItem = (
    ProposeRequest
    | ReadRequest
    | ConfChangeRequest
    | TransferRequest
    | SnapshotBuilt
    | TransportEvent
)
