"""An in-memory network for tests: ``MemoryNetwork`` and its per-node ``MemoryTransport``.

Faults are set on the network and apply to every message sent afterwards: a drop probability
(drawn from the network's seeded ``random.Random``), a delay (Trio time, so an autojump
``MockClock`` makes it instant), cuts (one-way, or both ways between groups with ``partition``)
and ``heal``. A cut also loses the messages already in flight on it, like a pulled cable.

Each transport owns a nursery. Messages to a node travel through one bounded queue and one delivery
task per sender (a link), so they keep their order the way a TCP connection does; a full queue
drops the message and reports the destination ``Unreachable`` to the sender. Random drops and cuts
are silent, except for an ``InstallSnapshot``, whose sender is told ``SnapshotStatus(ok=False)``.

The receiver checks the sender as the TCP transport's handshake does: a message from a node it
does not know, or has removed, is refused and counted; a removed sender is told ``Removed``.

Example::

    net = MemoryNetwork(rng=random.Random(7))
    async with net.open_transport(1, peers=[2]) as t1, net.open_transport(2, peers=[1]) as t2:
        net.set_delay(0.05)
        t1.send([Heartbeat(term=1, src=1, dst=2, commit=0)])
        event = await t2.events.receive()
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import trio

from .._errors import one_error_unwrapped
from ..core import InstallSnapshot, Message
from ._base import (
    Inbound,
    Refusal,
    Removed,
    SnapshotStatus,
    TransportEvent,
    TransportStatistics,
    Unreachable,
)
from ._events import EventSink
from ._stats import Counters

__all__ = ["MemoryNetwork", "MemoryTransport", "NetworkStatistics"]

log = logging.getLogger("raftkv.transport.memory")


@dataclass(frozen=True, slots=True)
class NetworkStatistics:
    """What the network itself did to the messages handed to it."""

    delivered: int = 0
    dropped: int = 0  # by the drop probability
    cut: int = 0  # by a cut link (at send time or in flight)


@dataclass(frozen=True, slots=True)
class _Parcel:
    due: float
    message: Message
    sender: MemoryTransport


@dataclass(slots=True)
class _Link:
    queue: trio.MemorySendChannel[_Parcel]
    # Invariant: parcels are queued with non-decreasing ``due``, so a random delay never reorders.
    last_due: float = float("-inf")


class MemoryNetwork:
    """A set of in-memory transports with injectable faults. Not thread-safe; one Trio run."""

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        queue_size: int = 1024,
        events_buffer: int = 256,
    ) -> None:
        if queue_size < 1 or events_buffer < 1:
            raise ValueError("queue_size and events_buffer must be >= 1")
        self._rng = rng if rng is not None else random.Random(0)
        self._queue_size = queue_size
        self._events_buffer = events_buffer
        self._transports: dict[int, MemoryTransport] = {}
        self._drop_rate = 0.0
        self._delay = (0.0, 0.0)
        self._cuts: set[tuple[int, int]] = set()
        self._delivered = 0
        self._dropped = 0
        self._cut = 0

    # -- nodes -----------------------------------------------------------------------------

    def open_transport(
        self, node_id: int, peers: Iterable[int] = ()
    ) -> AbstractAsyncContextManager[MemoryTransport]:
        """Attach node ``node_id``, knowing ``peers``; it detaches when the context exits.

        The same id may be opened again after it closed (a restart); twice at once is an error.
        """
        return self._open_transport(node_id, peers)

    @asynccontextmanager
    async def _open_transport(
        self, node_id: int, peers: Iterable[int]
    ) -> AsyncIterator[MemoryTransport]:
        if node_id < 1:
            raise ValueError(f"node ids are >= 1, got {node_id}")
        if node_id in self._transports:
            raise ValueError(f"node {node_id} is already attached to this network")
        with one_error_unwrapped():
            async with trio.open_nursery() as nursery:
                transport = MemoryTransport(self, node_id, peers, nursery)
                nursery.start_soon(transport._sink.run)
                self._transports[node_id] = transport
                try:
                    yield transport
                finally:
                    del self._transports[node_id]
                    transport._closed = True
                    transport._sink.close()
                    nursery.cancel_scope.cancel()

    @property
    def nodes(self) -> tuple[int, ...]:
        """The ids of the attached transports, sorted."""
        return tuple(sorted(self._transports))

    # -- faults ----------------------------------------------------------------------------

    def set_drop_rate(self, probability: float) -> None:
        """Lose each message with this probability (0 turns dropping off)."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"a drop probability is within [0, 1], got {probability}")
        self._drop_rate = probability

    def set_delay(self, low: float, high: float | None = None) -> None:
        """Delay each message by ``low`` seconds, or uniformly within [``low``, ``high``]."""
        high = low if high is None else high
        if not 0.0 <= low <= high:
            raise ValueError(f"need 0 <= low <= high, got {low}, {high}")
        self._delay = (low, high)

    def cut(self, src: int, dst: int) -> None:
        """Lose every message from ``src`` to ``dst`` (one way) until healed."""
        self._cuts.add((src, dst))

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut every link between nodes of different groups, both ways.

        Nodes named in no group keep their links. ``partition({1}, {2, 3})`` isolates node 1.
        """
        sets = [set(g) for g in groups]
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                for x in a:
                    for y in b:
                        self._cuts.update(((x, y), (y, x)))

    def heal(self, src: int | None = None, dst: int | None = None) -> None:
        """Restore the link ``src`` -> ``dst``, or every link when called without arguments."""
        if src is None and dst is None:
            self._cuts.clear()
        elif src is not None and dst is not None:
            self._cuts.discard((src, dst))
        else:
            raise ValueError("heal() takes both src and dst, or neither")

    def is_cut(self, src: int, dst: int) -> bool:
        return (src, dst) in self._cuts

    def statistics(self) -> NetworkStatistics:
        return NetworkStatistics(self._delivered, self._dropped, self._cut)

    # -- routing (called by the transports) ------------------------------------------------

    def _route(self, sender: MemoryTransport, m: Message) -> None:
        receiver = self._transports.get(m.dst)
        if receiver is None:
            sender._lost(m)
            return
        sender._counters.messages_sent += 1
        # Draw from the rng only when a fault is configured, so adding traffic elsewhere does
        # not change which messages a seeded run drops.
        if self._drop_rate and self._rng.random() < self._drop_rate:
            self._dropped += 1
            sender._in_flight_lost(m)
            return
        if (m.src, m.dst) in self._cuts:
            self._cut += 1
            sender._in_flight_lost(m)
            return
        low, high = self._delay
        delay = low if high == low else self._rng.uniform(low, high)
        receiver._accept(m, sender, trio.current_time() + delay)


class MemoryTransport:
    """One node's endpoint on a ``MemoryNetwork``; implements ``Transport``."""

    def __init__(
        self,
        network: MemoryNetwork,
        node_id: int,
        peers: Iterable[int],
        nursery: trio.Nursery,
    ) -> None:
        self._network = network
        self._id = node_id
        self._peers: dict[int, str] = {p: "" for p in peers if p != node_id}
        self._removed: set[int] = set()
        self._removed_by: set[int] = set()
        self._links: dict[int, _Link] = {}
        self._nursery = nursery
        self._sink = EventSink(network._events_buffer)
        self._counters = Counters()
        self._closed = False

    @property
    def node_id(self) -> int:
        return self._id

    @property
    def events(self) -> trio.MemoryReceiveChannel[TransportEvent]:
        return self._sink.receive

    def send(self, messages: Sequence[Message]) -> None:
        if self._closed:
            raise trio.ClosedResourceError("transport is closed")
        for m in messages:
            if m.src != self._id:
                raise ValueError(f"node {self._id} cannot send a message from {m.src}")
            if m.dst not in self._peers:
                self._lost(m)
            else:
                self._network._route(self, m)

    def add_peer(self, node_id: int, url: str) -> None:
        """Know ``node_id``; ``url`` is recorded but unused on a memory network."""
        if node_id < 1:
            raise ValueError(f"node ids are >= 1, got {node_id}")
        if node_id != self._id:
            self._peers[node_id] = url
            self._removed.discard(node_id)

    def remove_peer(self, node_id: int) -> None:
        self._peers.pop(node_id, None)
        if node_id != self._id:
            self._removed.add(node_id)

    def statistics(self) -> TransportStatistics:
        return self._counters.freeze()

    # -- sender side -----------------------------------------------------------------------

    def _lost(self, m: Message) -> None:
        """``m`` never left: unknown or absent destination, or a full queue."""
        self._counters.messages_dropped += 1
        self._sink.report(Unreachable(m.dst))
        if isinstance(m, InstallSnapshot):
            self._snapshot_done(m.dst, ok=False)

    def _in_flight_lost(self, m: Message) -> None:
        """``m`` was lost by the network: silent, like a lost packet, except for snapshots."""
        if isinstance(m, InstallSnapshot):
            self._snapshot_done(m.dst, ok=False)

    def _snapshot_done(self, peer: int, *, ok: bool) -> None:
        if ok:
            self._counters.snapshots_sent += 1
        else:
            self._counters.snapshots_failed += 1
        self._sink.report(SnapshotStatus(peer, ok))

    def _told_removed(self, by: int) -> None:
        if by not in self._removed_by:
            self._removed_by.add(by)
            self._sink.report(Removed(by))

    # -- receiver side ---------------------------------------------------------------------

    def _accept(self, m: Message, sender: MemoryTransport, due: float) -> None:
        link = self._links.get(m.src)
        if link is None:
            send, receive = trio.open_memory_channel[_Parcel](self._network._queue_size)
            link = self._links[m.src] = _Link(send)
            self._nursery.start_soon(self._run_link, m.src, receive)
        link.last_due = max(link.last_due, due)
        try:
            link.queue.send_nowait(_Parcel(link.last_due, m, sender))
        except trio.WouldBlock:
            sender._lost(m)

    async def _run_link(self, src: int, queue: trio.MemoryReceiveChannel[_Parcel]) -> None:
        parcel: _Parcel | None = None
        try:
            async for parcel in queue:
                await trio.sleep_until(parcel.due)
                await self._arrive(parcel)
                parcel = None
        finally:
            # Closing (or crashing) loses what is still queued; snapshot senders must hear.
            if parcel is not None:
                parcel.sender._in_flight_lost(parcel.message)
            while True:
                try:
                    parcel = queue.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                parcel.sender._in_flight_lost(parcel.message)

    async def _arrive(self, parcel: _Parcel) -> None:
        m, sender = parcel.message, parcel.sender
        network = self._network
        if (m.src, m.dst) in network._cuts:
            network._cut += 1
            sender._in_flight_lost(m)
            return
        refusal = (
            Refusal.REMOVED
            if m.src in self._removed
            else Refusal.UNKNOWN_SENDER
            if m.src not in self._peers
            else None
        )
        if refusal is not None:
            log.debug("node %d refused a message from %d: %s", self._id, m.src, refusal)
            self._counters.refused[refusal] += 1
            # As over TCP, where the refused connection fails what it carried.
            sender._sink.report(Unreachable(m.dst))
            if isinstance(m, InstallSnapshot):
                sender._snapshot_done(m.dst, ok=False)
            if refusal is Refusal.REMOVED:
                sender._told_removed(self._id)
            return
        # Counted first: whoever sees the event must see it counted.
        network._delivered += 1
        self._counters.messages_received += 1
        if isinstance(m, InstallSnapshot):
            self._counters.snapshots_received += 1
        await self._sink.deliver(Inbound(m))
        if isinstance(m, InstallSnapshot):
            sender._snapshot_done(self._id, ok=True)
