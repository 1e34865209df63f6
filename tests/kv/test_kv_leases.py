"""Leases in simulated time (Trio's autojump clock, the memory network): the leader's clock alone
expires them, through the log; a failover or a whole-cluster restart never expires one early,
and never keeps an abandoned one forever."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio

import raftkv
from raftkv.core import Role
from raftkv.kv import KVService, KVStateMachine, LeaseLimits
from raftkv.storage import MemoryStorage
from raftkv.transport import MemoryNetwork

TICK = 0.05
ELECTION_TICKS = 10
ELECTION_TIMEOUT = TICK * ELECTION_TICKS


@dataclass
class Replica:
    id: int
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    service: KVService | None = None
    scope: trio.CancelScope | None = None
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def kv(self) -> KVService:
        assert self.service is not None, f"node {self.id} is down"
        return self.service


class Cluster:
    def __init__(self, nursery: trio.Nursery, n: int, limits: LeaseLimits) -> None:
        self.nursery = nursery
        self.net = MemoryNetwork(rng=random.Random(1))
        self.limits = limits
        self.replicas = {i: Replica(i) for i in range(1, n + 1)}

    async def start(self, node_id: int) -> None:
        r = self.replicas[node_id]
        r.stopped = trio.Event()
        await self.nursery.start(self._run, r)

    async def _run(self, r: Replica, *, task_status: trio.TaskStatus[None]) -> None:
        peers = {i: f"http://node{i}:1" for i in self.replicas}
        config = raftkv.NodeConfig(
            id=r.id, tick_interval=TICK, election_ticks=ELECTION_TICKS, seed=r.id
        )
        try:
            with trio.CancelScope() as r.scope:
                others = [i for i in self.replicas if i != r.id]
                async with (
                    self.net.open_transport(r.id, peers=others) as transport,
                    raftkv.open_node(
                        config,
                        storage=r.storage,
                        transport=transport,
                        state_machine=(store := KVStateMachine()),
                        peers=peers,
                    ) as node,
                    trio.open_nursery() as tasks,
                ):
                    r.service = KVService(node, store, lease_limits=self.limits)
                    await tasks.start(r.service.leases.run)
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            r.service = None
            r.stopped.set()

    async def crash(self, node_id: int) -> None:
        r = self.replicas[node_id]
        assert r.scope is not None
        r.scope.cancel()
        await r.stopped.wait()
        r.storage = r.storage.crash()

    async def leader(self) -> KVService:
        while True:
            for r in self.replicas.values():
                if r.service is not None and r.service.node.status().role is Role.LEADER:
                    return r.service
            await trio.sleep(TICK)

    def up(self) -> list[KVService]:
        return [r.service for r in self.replicas.values() if r.service is not None]


@asynccontextmanager
async def cluster(n: int = 3, **limits: float) -> AsyncIterator[Cluster]:
    lease_limits = LeaseLimits(min_ttl=1, **limits)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        c = Cluster(nursery, n, lease_limits)
        for i in c.replicas:
            await c.start(i)
        try:
            yield c
        finally:
            nursery.cancel_scope.cancel()


async def _keep_alive(c: Cluster, lease: int, every: float, stop: trio.Event) -> None:
    """A client keeping ``lease`` alive through whichever node leads."""
    while not stop.is_set():
        with trio.move_on_after(every):
            await stop.wait()
        if stop.is_set():
            return
        leader = await c.leader()
        try:
            await leader.leases.keepalive(lease)
        except (raftkv.NotLeader, raftkv.ProposalDropped, raftkv.NodeClosed):
            continue  # the leader changed under us: the next round finds the new one


async def _wait_gone(c: Cluster, lease: int, key: bytes) -> float:
    """Virtual seconds until every up replica has lost ``lease`` and ``key``."""
    started = trio.current_time()
    while any(s.store.lease(lease) is not None or s.store.get(key) for s in c.up()):
        await trio.sleep(TICK)
    return trio.current_time() - started


async def test_a_lease_kept_alive_survives_a_leader_kill(autojump_clock) -> None:
    async with cluster() as c:
        leader = await c.leader()
        granted = await leader.leases.grant(3)
        await leader.put(b"svc/a", b"up", lease=granted.lease)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_keep_alive, c, granted.lease, 1.0, stop)
            await trio.sleep(5)
            await c.crash(leader.node.id)
            await trio.sleep(10)  # an election, then more keep-alives to the new leader
            stop.set()
        for s in c.up():
            assert s.store.lease(granted.lease) is not None
            kv = s.store.get(b"svc/a")
            assert kv is not None and kv.lease == granted.lease


async def test_an_abandoned_lease_expires_within_its_ttl_and_an_election_timeout(
    autojump_clock,
) -> None:
    async with cluster() as c:
        leader = await c.leader()
        granted = await leader.leases.grant(2)
        for k in (b"svc/a", b"svc/b"):
            await leader.put(k, b"up", lease=granted.lease)
        before = leader.store.revision
        took = await _wait_gone(c, granted.lease, b"svc/a")
        assert 2 - 0.5 <= took <= 2 + ELECTION_TIMEOUT
        # The keys vanished at one revision, the revoke's, on every replica.
        for s in c.up():
            assert s.store.revision == before + 1
            assert s.store.get(b"svc/b") is None
        assert sum(s.leases.stats.expired for s in c.up()) == 1


async def test_a_failover_never_expires_a_lease_early(autojump_clock) -> None:
    async with cluster() as c:
        leader = await c.leader()
        granted = await leader.leases.grant(4)
        await leader.put(b"k", b"v", lease=granted.lease)
        await trio.sleep(3)  # 1 s left on the old leader's clock
        await c.crash(leader.node.id)
        new = await c.leader()
        elected_after = trio.current_time()
        await trio.sleep(3)  # the old deadline has long passed
        assert new.store.lease(granted.lease) is not None, "expired early after a failover"
        took = await _wait_gone(c, granted.lease, b"k")
        total = trio.current_time() - elected_after
        assert total <= 4 + 2 * ELECTION_TIMEOUT, (took, total)  # the full TTL, from the takeover


async def test_a_whole_cluster_restart_keeps_checkpointed_remaining_ttls(autojump_clock) -> None:
    async with cluster(checkpoint_interval=1.0) as c:
        leader = await c.leader()
        granted = await leader.leases.grant(20)
        await leader.put(b"k", b"v", lease=granted.lease)
        await trio.sleep(12.5)  # checkpoints record about 8 s left
        for i in c.replicas:
            await c.crash(i)
        for i in c.replicas:
            await c.start(i)
        await c.leader()
        took = await _wait_gone(c, granted.lease, b"k")
        # About 8 s left at the crash: the last checkpoint (up to 1 s old) rounded up, never 20 s.
        assert 6 <= took <= 8 + 1 + 1 + 2 * ELECTION_TIMEOUT, took


async def test_a_keepalive_of_a_checkpointed_lease_clears_the_checkpoint(autojump_clock) -> None:
    async with cluster(checkpoint_interval=1.0) as c:
        leader = await c.leader()
        granted = await leader.leases.grant(10)
        await trio.sleep(6)
        info = leader.store.lease(granted.lease)
        assert info is not None and 0 < info.remaining < 10
        await leader.leases.keepalive(granted.lease)
        info = leader.store.lease(granted.lease)
        assert info is not None and info.remaining == 0  # a failover now gives the full TTL


async def test_leases_are_refused_where_they_cannot_be_served(autojump_clock) -> None:
    async with cluster() as c:
        leader = await c.leader()
        follower = next(s for s in c.up() if s is not leader)
        limits = LeaseLimits.for_election_timeout(ELECTION_TIMEOUT * 2)
        assert limits.min_ttl == 2
        with pytest.raises(raftkv.NotLeader):
            await follower.leases.keepalive(1)
        with pytest.raises(raftkv.UnknownLease):
            await leader.leases.keepalive(12345)
        granted = await follower.leases.grant(5, lease=77)  # a grant is a proposal: forwarded
        assert granted.lease == 77
        with pytest.raises(raftkv.LeaseIdTaken):
            await leader.leases.grant(5, lease=77)
        with pytest.raises(ValueError, match="lease TTL"):
            await leader.leases.grant(0)
        with pytest.raises(raftkv.UnknownLease):
            await leader.put(b"k", b"v", lease=999)
        revoked = await follower.leases.revoke(77)
        assert revoked.lease == 77
        with pytest.raises(raftkv.UnknownLease):
            await leader.leases.revoke(77)


async def test_a_lease_that_expired_by_the_leaders_clock_is_not_renewed(
    autojump_clock, kv_service: KVService
) -> None:
    """Its revocation may still be on its way (here the lessor's loop does not even run): a
    keep-alive must not promise a TTL that the revocation is about to end."""
    granted = await kv_service.leases.grant(2)
    assert await kv_service.leases.keepalive(granted.lease) == 2
    await trio.sleep(2.5)
    with pytest.raises(raftkv.UnknownLease):
        await kv_service.leases.keepalive(granted.lease)
