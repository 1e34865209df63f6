"""In-process clusters of real ``Node``s on a ``MemoryNetwork`` with ``MemoryStorage``.

Nodes can be crashed (their storage keeps only what was durable) and restarted. Used with
``trio.testing``'s autojump clock, so timeouts and elections take no real time.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

import raftkv
from raftkv.storage import MemoryStorage
from raftkv.transport import MemoryNetwork


class RecordingMachine:
    """Applies commands by recording them; its snapshot is the whole record."""

    def __init__(self) -> None:
        self.applied: list[bytes] = []

    def apply(self, index: int, command: bytes) -> object:
        self.applied.append(command)
        return len(self.applied)

    def snapshot(self) -> bytes:
        return b"\x00".join(self.applied)

    def restore(self, data: bytes) -> None:
        self.applied = data.split(b"\x00") if data else []

    def counts(self) -> Counter[bytes]:
        return Counter(self.applied)


def url(node_id: int) -> str:
    return f"http://node{node_id}:1"


@dataclass
class Member:
    id: int
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    sm: RecordingMachine = field(default_factory=RecordingMachine)
    node: raftkv.Node | None = None
    scope: trio.CancelScope | None = None
    stopped: trio.Event = field(default_factory=trio.Event)
    error: BaseException | None = None

    @property
    def n(self) -> raftkv.Node:
        assert self.node is not None, f"node {self.id} is not running"
        return self.node


class TestCluster:
    def __init__(
        self, nursery: trio.Nursery, net: MemoryNetwork, founders: list[int], **config: object
    ) -> None:
        self.nursery = nursery
        self.net = net
        self.founders = founders
        self.config = config
        self.members: dict[int, Member] = {}

    def peers(self) -> dict[int, str]:
        return {i: url(i) for i in self.founders}

    async def start(self, node_id: int, *, join: bool = False) -> Member:
        m = self.members.get(node_id) or Member(node_id)
        self.members[node_id] = m
        m.stopped = trio.Event()
        m.error = None
        await self.nursery.start(self._run, m, join)
        return m

    async def _run(self, m: Member, join: bool, *, task_status: trio.TaskStatus[None]) -> None:
        config = raftkv.NodeConfig(id=m.id, seed=m.id, **self.config)  # type: ignore[arg-type]
        peer_ids = [i for i in self.founders if i != m.id]
        try:
            with trio.CancelScope() as scope:
                m.scope = scope
                async with (
                    self.net.open_transport(m.id, peers=peer_ids) as transport,
                    raftkv.open_node(
                        config,
                        storage=m.storage,
                        transport=transport,
                        state_machine=m.sm,
                        peers=self.peers(),
                        join=join,
                    ) as node,
                ):
                    m.node = node
                    task_status.started()
                    await node.wait_removed()
        except raftkv.StorageFailed as exc:
            m.error = exc
        except BaseExceptionGroup as group:  # the node's nursery wraps what stopped it
            failed, rest = group.split(raftkv.StorageFailed)
            if rest is not None:
                raise
            m.error = failed
        finally:
            m.node = None
            m.stopped.set()

    async def crash(self, node_id: int) -> None:
        """Stop a node abruptly; it keeps only what its storage had made durable."""
        m = self.members[node_id]
        assert m.scope is not None
        m.scope.cancel()
        await m.stopped.wait()
        m.storage = m.storage.crash()
        m.sm = RecordingMachine()

    async def restart(self, node_id: int) -> Member:
        return await self.start(node_id)

    def running(self) -> list[Member]:
        return [m for m in self.members.values() if m.node is not None]

    async def wait_leader(self, among: list[int] | None = None) -> int:
        """Wait until the given running nodes agree on one leader."""
        ids = among or [m.id for m in self.running()]
        while True:
            leaders = {self.members[i].n.status().leader for i in ids}
            if len(leaders) == 1 and None not in leaders:
                leader = leaders.pop()
                assert leader is not None
                if leader in ids or among is None:
                    return leader
            await trio.sleep(0.05)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await trio.sleep(0.05)


@asynccontextmanager
async def open_cluster(n: int, *, seed: int = 0, **config: object) -> AsyncIterator[TestCluster]:
    net = MemoryNetwork(rng=random.Random(seed))
    async with trio.open_nursery() as nursery:
        cluster = TestCluster(nursery, net, list(range(1, n + 1)), **config)
        for i in range(1, n + 1):
            await cluster.start(i)
        try:
            yield cluster
        finally:
            nursery.cancel_scope.cancel()
