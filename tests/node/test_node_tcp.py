"""The runtime's main scenarios again, on the TCP transport over loopback, in real time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio

import raftkv
from e2e._procs import free_ports
from raftkv.storage import MemoryStorage
from raftkv.transport import open_tcp_transport

from .harness import RecordingMachine

FAST = {"tick_interval": 0.01, "election_ticks": 20}


class TcpCluster:
    def __init__(self, nursery: trio.Nursery, n: int, **config: object) -> None:
        self.nursery = nursery
        ports = free_ports(n + 1)
        self.urls = {i: f"http://127.0.0.1:{ports[i - 1]}" for i in range(1, n + 2)}
        self.founders = {i: self.urls[i] for i in range(1, n + 1)}
        self.config = {**FAST, **config}
        self.nodes: dict[int, raftkv.Node] = {}
        self.machines: dict[int, RecordingMachine] = {}
        self.storages: dict[int, MemoryStorage] = {}
        self.scopes: dict[int, trio.CancelScope] = {}
        self.stopped: dict[int, trio.Event] = {}

    async def start(self, i: int, *, join: bool = False) -> None:
        self.storages.setdefault(i, MemoryStorage())
        self.machines[i] = RecordingMachine()
        self.stopped[i] = trio.Event()
        await self.nursery.start(self._run, i, join)

    async def _run(self, i: int, join: bool, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            with trio.CancelScope() as scope:
                self.scopes[i] = scope
                host, port = self.urls[i].removeprefix("http://").split(":")
                async with AsyncExitStack() as stack:
                    transport = await stack.enter_async_context(
                        open_tcp_transport(
                            i, "test", self.urls, listen_host=host, listen_port=int(port)
                        )
                    )
                    node = await stack.enter_async_context(
                        raftkv.open_node(
                            raftkv.NodeConfig(id=i, **self.config),  # type: ignore[arg-type]
                            storage=self.storages[i],
                            transport=transport,
                            state_machine=self.machines[i],
                            peers=self.founders,
                            join=join,
                        )
                    )
                    self.nodes[i] = node
                    task_status.started()
                    await node.wait_removed()
        finally:
            self.nodes.pop(i, None)
            self.stopped[i].set()

    async def crash(self, i: int) -> None:
        self.scopes[i].cancel()
        await self.stopped[i].wait()
        self.storages[i] = self.storages[i].crash()

    async def leader(self, among: list[int]) -> int:
        """Wait until the running nodes of ``among`` agree on a leader."""

        def agreed(_: object) -> bool:
            leaders = {self.nodes[i].status().leader for i in among if i in self.nodes}
            return len(leaders) == 1 and leaders <= set(among)

        # Any running node's loop wakes at least once a tick: good enough to re-check.
        await self.nodes[among[0]].wait_status(agreed)
        leader = self.nodes[among[0]].status().leader
        assert leader is not None
        return leader


@asynccontextmanager
async def tcp_cluster(n: int, **config: object) -> AsyncIterator[TcpCluster]:
    async with trio.open_nursery() as nursery:
        c = TcpCluster(nursery, n, **config)
        for i in range(1, n + 1):
            await c.start(i)
        try:
            yield c
        finally:
            nursery.cancel_scope.cancel()


async def test_write_anywhere_read_anywhere_over_tcp() -> None:
    async with tcp_cluster(3) as c:
        with trio.fail_after(10):
            await c.leader([1, 2, 3])
            for i in (1, 2, 3):
                await c.nodes[i].propose(f"w{i}".encode())
            for i in (1, 2, 3):
                seen = await c.nodes[i].read(lambda sm: sorted(sm.applied))
                assert seen == [b"w1", b"w2", b"w3"]


async def test_crashed_follower_catches_up_by_snapshot_over_tcp() -> None:
    async with tcp_cluster(3, snapshot_count=20, catch_up_entries=5) as c:
        with trio.fail_after(20):
            leader = await c.leader([1, 2, 3])
            lagger = next(i for i in (1, 2, 3) if i != leader)
            await c.crash(lagger)
            for k in range(60):
                await c.nodes[leader].propose(f"k{k}".encode())
            await c.start(lagger)
            await c.nodes[lagger].wait_status(
                lambda s: s.applied >= c.nodes[leader].status().applied
            )
            assert c.machines[lagger].applied == c.machines[leader].applied
            assert c.nodes[lagger].statistics().snapshots_restored >= 1


async def test_leader_crash_elects_another_over_tcp() -> None:
    async with tcp_cluster(3) as c:
        with trio.fail_after(20):
            leader = await c.leader([1, 2, 3])
            await c.nodes[leader].propose(b"before")
            await c.crash(leader)
            others = [i for i in (1, 2, 3) if i != leader]
            new = await c.leader(others)
            assert new != leader
            await c.nodes[others[0]].propose(b"after")
            assert b"before" in c.machines[others[1]].applied


async def test_add_learner_promote_and_remove_over_tcp() -> None:
    async with tcp_cluster(3) as c:
        with trio.fail_after(20):
            leader = await c.leader([1, 2, 3])
            await c.nodes[leader].propose(b"x")
            await c.nodes[leader].add_member(4, c.urls[4])
            await c.start(4, join=True)
            await c.nodes[leader].wait_status(
                lambda s: any(m.id == 4 and m.voter for m in s.members)
            )
            await c.nodes[4].propose(b"from-4")
            victim = next(i for i in (1, 2, 3) if i != leader)
            await c.nodes[leader].remove_member(victim)
            await c.stopped[victim].wait()
            await c.nodes[leader].propose(b"after-removal")
            assert b"x" in c.machines[4].applied
