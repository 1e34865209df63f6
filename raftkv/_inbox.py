"""What callers hand to the raft loop (besides the transport's events), and ``Inbox``, the
channel it travels by."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from ._errors import ProposalDropped
from ._waiters import Waiter
from .core import ConfChange, Snapshot, SnapshotMetadata
from .transport import Inbound, TransportEvent

if TYPE_CHECKING:
    from ._installer import PreparedState

__all__ = [
    "MAX_BATCH",
    "ConfChangeRequest",
    "Inbox",
    "InboxItem",
    "ProposeRequest",
    "ReadRequest",
    "SnapshotBuilt",
    "SnapshotPrepared",
    "TransferRequest",
]


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


@dataclass(frozen=True, slots=True)
class SnapshotBuilt:
    """A snapshot built outside the raft loop, durable, to be put in force (``snapshot`` None:
    its storage had it already). ``discard`` drops its file if it is not saved after all."""

    metadata: SnapshotMetadata
    snapshot: Snapshot | None
    discard: Callable[[], None]


@dataclass(frozen=True, slots=True)
class SnapshotPrepared:
    """A snapshot from the leader, read into a new state beside the loop (``_installer``):
    its message goes to the core now."""

    inbound: Inbound
    state: PreparedState


# How many requests (and as many peer events) one loop iteration takes before its Ready.
MAX_BATCH = 4096

InboxItem = (
    ProposeRequest
    | ReadRequest
    | ConfChangeRequest
    | TransferRequest
    | SnapshotBuilt
    | SnapshotPrepared
    | TransportEvent
)


class Inbox:
    """What reaches the raft loop: a bounded channel of local requests, and the transport's
    events channel (peers' messages are read straight from it).

    A request that arrives while the loop waits on the transport wakes it by cancelling that
    wait (``wait``), so neither side needs a task of its own to forward the other.
    """

    def __init__(self, size: int, events: trio.MemoryReceiveChannel[TransportEvent]) -> None:
        self._send, self._recv = trio.open_memory_channel[InboxItem](size)
        self._events = events  # peers' messages, read straight from the transport
        self._events_open = True
        self._waiting: trio.CancelScope | None = None
        self._closed: BaseException | None = None  # why no request is taken any more

    def offer(self, item: InboxItem) -> bool:
        """Queue ``item`` if there is room, and wake the loop; else False.

        No checkpoint: the caller's next step is to wait for the answer, and one scheduling
        pass fewer is a measurable part of a lone write."""
        if self._closed is not None:
            raise self._closed
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            return False
        self._wake()
        return True

    async def submit(self, item: InboxItem) -> None:
        """Queue ``item``, waiting while the inbox is full."""
        if not self.offer(item):
            try:
                await self._send.send(item)
            except trio.ClosedResourceError:
                assert self._closed is not None
                raise self._closed from None
            self._wake()

    async def enqueue(self, item: InboxItem, deadline: float) -> None:
        """Queue ``item`` by ``deadline``; a full inbox past it is a certain refusal."""
        if self.offer(item):
            return  # it had room: no deadline to arm
        with trio.move_on_at(deadline):
            await self.submit(item)
            return
        raise ProposalDropped("the node is overloaded: its request queue is full")

    def _wake(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()

    def close(self, error: BaseException) -> list[InboxItem]:
        """Take no more requests (``error`` for whoever offers one); the requests still queued,
        which the raft loop will never take, for their waiters to be told."""
        self._closed = error
        self._send.close()
        left = []
        while True:
            try:
                left.append(self._recv.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return left

    def drain(self, handle: Callable[[InboxItem], None]) -> bool:
        """Handle what is already waiting (local requests, then peers' events), at most
        ``MAX_BATCH`` of each; False if there was nothing."""
        handled = False
        for _ in range(MAX_BATCH):
            try:
                item = self._recv.receive_nowait()
            except trio.WouldBlock:
                break
            handle(item)
            handled = True
        for _ in range(MAX_BATCH if self._events_open else 0):
            try:
                event = self._events.receive_nowait()
            except trio.WouldBlock:
                break
            except trio.EndOfChannel:
                self._events_open = False
                break
            handle(event)
            handled = True
        return handled

    async def wait(self, deadline: float, handle: Callable[[InboxItem], None]) -> None:
        """Handle the first request or peer event to arrive, or return at ``deadline``."""
        with trio.CancelScope(deadline=deadline) as scope:
            self._waiting = scope
            try:
                if self._events_open:
                    try:
                        handle(await self._events.receive())
                    except trio.EndOfChannel:
                        self._events_open = False
                else:
                    handle(await self._recv.receive())
            finally:
                self._waiting = None
