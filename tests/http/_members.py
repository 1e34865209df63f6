"""In-process raftkv members for the lease, lock and election tests: a cluster on a memory
network, every node's lessor running, each node behind the daemon's app at ``http://node<i>``,
followers replaying leader-only requests on the leader (as raftkvd's do). ``Dispatch`` is an
httpx transport that sends a request for ``http://node<i>`` to node i's app, for clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import trio

import raftkv
from raftkv.kv import KVService, KVStateMachine, Limits
from raftkv.storage import MemoryStorage
from raftkv.transport import MemoryNetwork
from raftkv_cli._app import create_app
from raftkv_cli._edge import ASGIApp
from raftkv_cli._serve import hypercorn_config, serve_http


@dataclass
class Member:
    node: raftkv.Node
    service: KVService
    http: httpx.AsyncClient
    app: ASGIApp

    def unchanged(self) -> Callable[[], None]:
        before = self.node.status().last_index

        def check() -> None:
            assert self.node.status().last_index == before, "a refused request reached the log"

        return check


class Dispatch(httpx.AsyncBaseTransport):
    """Requests to ``http://node<i>`` go to node i's app (the followers' forwarding client)."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.apps[request.url.host].handle_async_request(request)


@asynccontextmanager
async def open_members(n: int = 3, dispatch: Dispatch | None = None) -> AsyncIterator[list[Member]]:
    net = MemoryNetwork()
    peers = {i: f"http://127.0.0.1:{i}" for i in range(1, n + 1)}
    dispatch = dispatch or Dispatch()
    members: list[Member] = []
    async with (
        httpx.AsyncClient(transport=dispatch) as forward,
        trio.open_nursery() as nursery,
    ):

        async def run(node_id: int, task_status: trio.TaskStatus[None]) -> None:
            config = raftkv.NodeConfig(
                id=node_id, tick_interval=0.01, client_url=f"http://node{node_id}", seed=node_id
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
                trio.open_nursery() as tasks,
            ):
                service = KVService(node, kv, Limits(max_key_bytes=64))
                await tasks.start(service.leases.run)
                app: ASGIApp = create_app(service, forward_client=forward)
                dispatch.apps[f"node{node_id}"] = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
                    base_url=f"http://node{node_id}",
                ) as http:
                    members.append(Member(node, service, http, app))
                    task_status.started()
                    try:
                        await trio.sleep_forever()
                    finally:
                        service.close()

        for i in peers:
            await nursery.start(run, i)
        members.sort(key=lambda m: m.node.id)
        with trio.fail_after(10):
            for m in members:
                # (each member publishes its client URL through the log once it is up)
                await m.node.wait_status(
                    lambda s: (
                        s.leader is not None
                        and all(x.client_url for x in s.members)
                        and s.applied == s.last_index
                    )
                )
        yield members
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def serve_members(members: list[Member]) -> AsyncIterator[list[str]]:
    """Each member's app on a real Hypercorn on loopback; their URLs."""
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        urls = []
        for m in members:
            binds = await nursery.start(
                lambda task_status, app=m.app: serve_http(
                    app,
                    hypercorn_config("127.0.0.1", 0),
                    shutdown_trigger=stop.wait,
                    task_status=task_status,
                )
            )
            urls.append(binds[0])
        try:
            yield urls
        finally:
            stop.set()
