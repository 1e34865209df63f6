"""In-process raftkv nodes behind the daemon's ASGI app, for the HTTP tests: one node or a
small cluster on a memory network, an ASGI driver that reads a streaming response as it comes
(httpx's ASGI transport waits for the whole body), and a real Hypercorn server on loopback.

Every ``KVService`` made here is closed when its node stops, as the daemon does.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

import raftkv
from raftkv.kv import KVService, KVStateMachine, Limits
from raftkv.storage import MemoryStorage
from raftkv.transport import MemoryNetwork
from raftkv_cli._app import create_app
from raftkv_cli._edge import ASGIApp
from raftkv_cli._serve import ClientTLS, hypercorn_config, serve_http

FAST_PROGRESS = 0.05  # seconds between progress events in these tests


@dataclass
class Api:
    node: raftkv.Node
    service: KVService
    app: ASGIApp
    client: httpx.AsyncClient  # on the app in process (whole responses only)
    closed: bool = False

    def close(self) -> None:
        """End every watch, as raftkvd does when it stops. (Once: ``KVService.close`` raises
        when called again.)"""
        if not self.closed:
            self.closed = True
            self.service.close()

    def unchanged(self):
        """A check that nothing reached the log since this call."""
        before = self.node.status().last_index

        def check() -> None:
            assert self.node.status().last_index == before, "a refused request reached the log"

        return check


@asynccontextmanager
async def _node_api(
    node: raftkv.Node,
    kv: KVStateMachine,
    limits: Limits,
    *,
    watch_buffer: int,
    progress_interval: float,
) -> AsyncIterator[Api]:
    service = KVService(node, kv, limits, watch_buffer=watch_buffer)
    app = create_app(service, watch_progress_interval=progress_interval)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        api = Api(node, service, app, client)
        try:
            yield api
        finally:
            api.close()


@asynccontextmanager
async def open_api(
    limits: Limits | None = None,
    *,
    watch_buffer: int = 1000,
    progress_interval: float = FAST_PROGRESS,
) -> AsyncIterator[Api]:
    """One node, leading, behind the daemon's app."""
    async with open_cluster(
        1, limits, watch_buffer=watch_buffer, progress_interval=progress_interval
    ) as apis:
        yield apis[0]


@asynccontextmanager
async def open_cluster(
    n: int,
    limits: Limits | None = None,
    *,
    watch_buffer: int = 1000,
    progress_interval: float = FAST_PROGRESS,
    net: MemoryNetwork | None = None,
) -> AsyncIterator[list[Api]]:
    """``n`` nodes on a memory network (``net``, to partition it; a new one by default), a
    leader elected, each behind the daemon's app."""
    net = net or MemoryNetwork()
    peers = {i: f"http://127.0.0.1:{i}" for i in range(1, n + 1)}
    apis: list[Api] = []
    async with trio.open_nursery() as nursery:

        async def run(node_id: int, task_status: trio.TaskStatus[None]) -> None:
            config = raftkv.NodeConfig(
                id=node_id, tick_interval=0.01, client_url="http://testserver", seed=node_id
            )
            others = [i for i in peers if i != node_id]
            async with (
                net.open_transport(node_id, peers=others) as transport,
                raftkv.open_node(
                    config,
                    storage=MemoryStorage(),
                    transport=transport,
                    state_machine=(kv := KVStateMachine()),
                    peers=peers,
                ) as node,
                _node_api(
                    node,
                    kv,
                    limits or Limits(),
                    watch_buffer=watch_buffer,
                    progress_interval=progress_interval,
                ) as api,
            ):
                apis.append(api)
                task_status.started()
                await trio.sleep_forever()

        for i in peers:
            await nursery.start(run, i)
        apis.sort(key=lambda a: a.node.id)
        with trio.fail_after(10):
            for api in apis:
                # Settled: a leader, every member's client URL published (a proposal of its
                # own), and everything applied — so that a test sees only its own requests.
                await api.node.wait_status(
                    lambda s: (
                        s.leader is not None
                        and all(m.client_url for m in s.members)
                        and s.applied == s.last_index
                    )
                )
        yield apis
        nursery.cancel_scope.cancel()


# -- streaming responses in process --------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event."""

    id: int
    event: str
    data: dict[str, Any]


def parse_events(text: str) -> list[Event]:
    """The events in a ``text/event-stream`` body (every event whole)."""
    out = []
    for block in text.split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) == {"id", "event", "data"}, block
        out.append(Event(int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return out


@dataclass
class Stream:
    """A response as the app writes it."""

    status: int
    headers: dict[str, str]
    _messages: trio.MemoryReceiveChannel[dict[str, Any]]
    _leave: trio.Event
    _buffer: str = ""
    body: bytes = b""
    ended: bool = False  # the app sent the last body chunk
    _events: list[Event] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    async def _read(self) -> bool:
        """Take the next body chunk; False at the end."""
        if self.ended:
            return False
        try:
            message = await self._messages.receive()
        except trio.EndOfChannel:
            self.ended = True
            return False
        chunk = message.get("body", b"")
        self.body += chunk
        self._buffer += chunk.decode()
        self.ended = not message.get("more_body", False)
        return True

    async def next_event(self, timeout: float = 5) -> Event:
        with trio.fail_after(timeout):
            while not self._events:
                head, sep, rest = self._buffer.partition("\n\n")
                if sep:
                    self._buffer = rest
                    self._events.extend(parse_events(head + sep))
                elif not await self._read():
                    raise AssertionError(f"the stream ended; left over: {self._buffer!r}")
        return self._events.pop(0)

    async def events_until(self, kind: str, timeout: float = 5) -> list[Event]:
        """Every event up to and including the first of ``kind``."""
        out = [await self.next_event(timeout)]
        while out[-1].event != kind:
            out.append(await self.next_event(timeout))
        return out

    async def changes(self, n: int, timeout: float = 5) -> list[Event]:
        """The next ``n`` change events (skipping progress)."""
        out: list[Event] = []
        while len(out) < n:
            e = await self.next_event(timeout)
            assert e.event in ("change", "progress"), e
            if e.event == "change":
                out.append(e)
        return out

    async def wait_ended(self, timeout: float = 5) -> None:
        with trio.fail_after(timeout):
            while await self._read():
                pass

    def leave(self) -> None:
        """The client goes away (``http.disconnect``)."""
        self._leave.set()


@asynccontextmanager
async def stream(
    app: ASGIApp,
    path: str,
    query: str = "",
    headers: Sequence[tuple[str, str]] = (),
    *,
    method: str = "GET",
    buffer: float = math.inf,
) -> AsyncIterator[Stream]:
    """Send one request to ``app`` and read its response as it streams. ``buffer``: body
    chunks the client takes before it stops reading (0: a client that reads nothing until the
    test reads)."""
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1),
    }
    leave = trio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await leave.wait()
        return {"type": "http.disconnect"}

    send_channel, receive_channel = trio.open_memory_channel[dict[str, Any]](buffer)

    async def send(message: dict[str, Any]) -> None:
        await send_channel.send(message)

    async def run() -> None:
        async with send_channel:
            await app(scope, receive, send)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        with trio.fail_after(5):
            start = await receive_channel.receive()
        assert start["type"] == "http.response.start"
        headers_out = {k.decode(): v.decode() for k, v in start["headers"]}
        s = Stream(start["status"], headers_out, receive_channel, leave)
        try:
            yield s
        finally:
            leave.set()
            # The app must finish by itself once the client left (its watcher released).
            with trio.fail_after(5):
                async for _ in receive_channel:
                    pass


# -- a real server ---------------------------------------------------------------------------------


@asynccontextmanager
async def serve(api: Api, tls: ClientTLS | None = None) -> AsyncIterator[str]:
    """``api``'s app on a real Hypercorn on loopback, configured as raftkvd's (with ``tls``:
    as ``--client-cert``/``--client-key``/``--client-ca`` configure it); its URL."""
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        binds = await nursery.start(
            lambda task_status: serve_http(
                api.app,
                hypercorn_config("127.0.0.1", 0, tls),
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        try:
            yield binds[0]
        finally:
            api.close()  # as raftkvd: watches end before the server drains
            stop.set()
