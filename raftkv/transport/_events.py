"""``EventSink``: feeds a transport's ``events`` channel.

Inbound messages are delivered with backpressure (a slow node slows its peers' connections, which
is what bounded queues are for). Reports (``Unreachable``, ``SnapshotStatus``, ``Removed``) come
from synchronous code such as ``send()``, which must never block, so they go through a coalescing
set that one task forwards.
"""

from __future__ import annotations

import logging
from collections import deque

import trio

from ._base import Inbound, Removed, SnapshotStatus, TransportEvent, Unreachable

__all__ = ["EventSink"]

log = logging.getLogger("raftkv.transport")

Report = Unreachable | SnapshotStatus | Removed


class EventSink:
    def __init__(self, buffer: int) -> None:
        self._send, self.receive = trio.open_memory_channel[TransportEvent](buffer)
        # Unreachable/Removed already waiting are not queued twice, so the queue stays bounded
        # however often send() fails; every SnapshotStatus is kept (one per snapshot sent).
        self._pending: deque[Report] = deque()
        self._waiting: set[Report] = set()
        self._wake = trio.Event()
        self._closed = False

    def report(self, event: Report) -> None:
        """Queue a report without blocking; a no-op once the transport is closed."""
        if self._closed:
            return
        if isinstance(event, SnapshotStatus):
            self._pending.append(event)
        elif event not in self._waiting:
            self._waiting.add(event)
            self._pending.append(event)
        self._wake.set()

    async def deliver(self, event: Inbound) -> None:
        """Hand an inbound message to the node, waiting while its channel is full (only then
        does it yield: the reader's next step is to wait for more bytes anyway)."""
        try:
            try:
                self._send.send_nowait(event)
            except trio.WouldBlock:
                await self._send.send(event)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The node stopped listening (or the transport is closing): nobody to tell.
            log.debug("events channel closed; dropping %s", type(event.message).__name__)

    async def run(self) -> None:
        """Forward reports until cancelled."""
        while True:
            while not self._pending:
                self._wake = trio.Event()
                await self._wake.wait()
            event = self._pending.popleft()
            self._waiting.discard(event)
            try:
                await self._send.send(event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    def close(self) -> None:
        self._closed = True
        self._pending.clear()
        self._waiting.clear()
        self._send.close()
