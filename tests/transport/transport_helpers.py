"""Test helpers for the transport suites: event recorders and a cluster harness per transport."""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import trio

from raftkv.core import Heartbeat, Message
from raftkv.transport import (
    Inbound,
    MemoryNetwork,
    TcpOptions,
    TransportEvent,
    open_tcp_transport,
)

DEADLINE = 5.0
CLUSTER = "test-cluster"
# Fast reconnects keep the restart tests short.
FAST = TcpOptions(backoff_initial=0.01, backoff_max=0.1, connect_timeout=2, handshake_timeout=2)


def hb(src: int, dst: int, n: int = 0, context: bytes = b"") -> Heartbeat:
    """A small message whose ``commit`` numbers it."""
    return Heartbeat(term=1, src=src, dst=dst, commit=n, context=context)


def commits(messages: Sequence[Message]) -> list[int]:
    """The numbers of heartbeats made by ``hb`` (anything else fails the test)."""
    assert all(isinstance(m, Heartbeat) for m in messages), messages
    return [m.commit for m in messages if isinstance(m, Heartbeat)]


class Recorder:
    """Keeps every event of a transport; tests wait on conditions over them."""

    def __init__(self) -> None:
        self.events: list[TransportEvent] = []
        self._changed = trio.Event()

    async def run(self, channel: trio.MemoryReceiveChannel[TransportEvent]) -> None:
        async for event in channel:
            self.events.append(event)
            self._changed.set()
            self._changed = trio.Event()

    async def wait_for(
        self, predicate: Callable[[TransportEvent], bool], *, timeout: float = DEADLINE
    ) -> TransportEvent:
        """The first recorded event matching ``predicate``, waiting for it if need be."""
        with trio.fail_after(timeout):
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                await self._changed.wait()

    async def wait_event(self, event: TransportEvent, *, timeout: float = DEADLINE) -> None:
        await self.wait_for(lambda e: e == event, timeout=timeout)

    def messages(self, src: int | None = None) -> list[Message]:
        return [
            e.message
            for e in self.events
            if isinstance(e, Inbound) and (src is None or e.message.src == src)
        ]

    async def wait_messages(
        self, count: int, *, src: int | None = None, timeout: float = DEADLINE
    ) -> list[Message]:
        """Wait until ``count`` messages (from ``src``) arrived; return them all."""
        with trio.fail_after(timeout):
            while len(self.messages(src)) < count:
                await self._changed.wait()
        return self.messages(src)


@dataclass(eq=False)
class Node:
    id: int
    transport: Any  # MemoryTransport | TcpTransport
    url: str
    recorder: Recorder = field(default_factory=Recorder)
    _stop: trio.Event = field(default_factory=trio.Event)
    _stopped: trio.Event = field(default_factory=trio.Event)

    def send(self, messages: Sequence[Message]) -> None:
        self.transport.send(messages)

    async def stop(self) -> None:
        self._stop.set()
        await self._stopped.wait()


class Harness:
    """Starts and stops nodes of one transport kind inside the test's nursery."""

    def __init__(self, kind: str, nursery: trio.Nursery) -> None:
        self.kind = kind
        self.nodes: dict[int, Node] = {}
        self.network = MemoryNetwork(rng=random.Random(1))
        self._nursery = nursery

    def _open(
        self, node_id: int, *, port: int, options: TcpOptions, **kw: Any
    ) -> AbstractAsyncContextManager[Any]:
        if self.kind == "memory":
            return self.network.open_transport(node_id)
        return open_tcp_transport(
            node_id,
            kw.pop("cluster_id", CLUSTER),
            kw.pop("peers", {}),
            listen_host="127.0.0.1",
            listen_port=port,
            options=options,
            **kw,
        )

    async def start(
        self, node_id: int, *, port: int = 0, options: TcpOptions = FAST, **kw: Any
    ) -> Node:
        node: Node = await self._nursery.start(self._run, node_id, port, options, kw)
        self.nodes[node_id] = node
        return node

    async def _run(
        self,
        node_id: int,
        port: int,
        options: TcpOptions,
        kw: dict[str, Any],
        task_status: trio.TaskStatus[Node],
    ) -> None:
        async with self._open(node_id, port=port, options=options, **kw) as transport:
            url = transport.url if self.kind == "tcp" else f"http://memory:{node_id}"
            node = Node(node_id, transport, url)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(node.recorder.run, transport.events)
                task_status.started(node)
                await node._stop.wait()
                nursery.cancel_scope.cancel()
        node._stopped.set()

    async def cluster(self, *ids: int) -> list[Node]:
        """Start ``ids`` and make every one know every other."""
        nodes = [await self.start(i) for i in ids]
        self.connect_all()
        return nodes

    def connect_all(self) -> None:
        for a in self.nodes.values():
            for b in self.nodes.values():
                if a is not b:
                    a.transport.add_peer(b.id, b.url)


def tls_contexts(ca: Any, cert: Any | None) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for mutual TLS trusting ``ca``; ``cert`` is this node's."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    if cert is not None:
        cert.configure_cert(server)
        cert.configure_cert(client)
    return server, client
