"""Leases, locks and elections from the client, on an in-process three-node cluster (every
lessor running; followers replay leader-only requests on the leader), each node's app on a real
server on loopback (watches stream; httpx's in-process transport would wait for the whole body).
The blocking client runs from a worker thread."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

sys.path.insert(0, str(Path(__file__).parent.parent / "http"))
from _members import Member, open_members, serve_members

from raftkv.client import AsyncClient, Client, KeyNotFound, LeaseLost, LeaseNotFound

TTL = 2  # seconds (the minimum here is 1: these nodes' election timeout is 0.1 s)


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[list[Member], AsyncClient]]:
    async with (
        open_members(3) as members,
        serve_members(members) as urls,
        AsyncClient(urls) as kv,
    ):
        yield members, kv


async def test_a_lease_lives_while_its_block_runs(cluster) -> None:
    _, kv = cluster
    async with kv.lease(ttl=TTL) as lease:
        await kv.put("svc/a", "up", lease=lease.id)
        await trio.sleep(2.5 * TTL)  # kept alive meanwhile
        assert not lease.is_lost
        lease.check()
        status = await kv.lease_status(lease.id)
        assert status.granted_ttl == TTL and status.keys == (b"svc/a",)
        assert await kv.leases() == (lease.id,)
    assert lease.is_lost and lease.lost_reason == "revoked"
    with pytest.raises(KeyNotFound):
        await kv.get("svc/a")  # revoked on exit, its key with it
    assert await kv.leases() == ()


async def test_a_lease_revoked_elsewhere_is_lost(cluster) -> None:
    _, kv = cluster
    async with kv.lease(ttl=TTL) as lease:
        await kv.revoke_lease(lease.id)
        with trio.fail_after(TTL):
            await lease.lost()
        with pytest.raises(LeaseLost, match="expired or was revoked"):
            lease.check()
        with pytest.raises(LeaseNotFound):
            await kv.keepalive(lease.id)


async def test_a_lease_is_revoked_when_the_block_raises(cluster) -> None:
    _, kv = cluster
    with pytest.raises(ZeroDivisionError):
        async with kv.lease(ttl=30) as lease:
            await kv.put("k", "v", lease=lease.id)
            _ = 1 / 0
    assert await kv.leases() == ()
    with pytest.raises(KeyNotFound):
        await kv.get("k")


async def test_raw_lease_calls(cluster) -> None:
    _, kv = cluster
    granted = await kv.grant_lease(30, id=77)
    assert (granted.id, granted.ttl) == (77, 30)
    assert await kv.keepalive(77) == 30
    status = await kv.lease_status(77, keys=False)
    assert status.keys is None and 29 <= status.ttl <= 30
    revoked = await kv.revoke_lease(77)
    assert (revoked.id, revoked.deleted) == (77, 0)
    with pytest.raises(LeaseNotFound) as caught:
        await kv.put("k", "v", lease=77)
    assert caught.value.lease == 77
    with pytest.raises(ValueError, match="lease id"):
        await kv.keepalive(0)


async def test_a_lock_excludes_and_hands_over_in_order_with_growing_tokens(cluster) -> None:
    members, kv = cluster
    holding: list[int] = []
    order: list[tuple[int, int]] = []
    queued = trio.Event()

    async def contender(n: int) -> None:
        async with kv.lock("locks/a", ttl=TTL) as held:
            holding.append(n)
            assert len(holding) == 1, holding
            order.append((n, held.token))
            await queued.wait()
            await trio.sleep(0.05)
            holding.remove(n)

    async with trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(contender, n)
            # each enqueued before the next one starts: the lock's order is theirs
            with trio.fail_after(5):
                while len((await kv.get_prefix("locks/a/")).kvs) < n + 1:
                    await trio.sleep(0.01)
        # Three wait, each watching its predecessor only: one watch each.
        with trio.fail_after(5):
            while sum(m.service.watches.stats.open for m in members) < 3:
                await trio.sleep(0.01)
        assert sum(m.service.watches.stats.open for m in members) == 3
        queued.set()
    assert [n for n, _ in order] == [0, 1, 2, 3]
    tokens = [t for _, t in order]
    assert tokens == sorted(tokens) and len(set(tokens)) == 4
    assert (await kv.get_prefix("locks/a/")).kvs == ()


async def test_a_lock_is_released_when_its_block_is_cancelled(cluster) -> None:
    _, kv = cluster
    with trio.move_on_after(0.2):
        async with kv.lock("locks/b", ttl=30):
            await trio.sleep_forever()
    with trio.fail_after(2):  # free at once, not after 30 s
        async with kv.lock("locks/b", ttl=30) as held:
            assert held.token > 0
    assert await kv.leases() == ()


async def test_a_waiter_cancelled_leaves_the_queue(cluster) -> None:
    _, kv = cluster
    async with kv.lock("locks/c", ttl=30):
        with trio.move_on_after(0.3):
            async with kv.lock("locks/c", ttl=30):
                raise AssertionError("held twice")
        assert len((await kv.get_prefix("locks/c/")).kvs) == 1


async def test_an_election(cluster) -> None:
    _, kv = cluster
    async with kv.election("svc/primary", ttl=TTL) as a, kv.election("svc/primary", ttl=TTL) as b:
        assert await a.leader() is None
        first = await a.campaign("a:1")
        assert first.value == b"a:1" and a.is_leader
        observed = []
        async with trio.open_nursery() as nursery:

            async def observe() -> None:
                async with a.observe() as leaders:
                    async for leader in leaders:
                        observed.append(leader.value)
                        if leader.value == b"b:1":
                            return

            nursery.start_soon(observe)
            elected_b = trio.Event()

            async def campaign_b() -> None:
                await b.campaign("b:1")
                elected_b.set()

            nursery.start_soon(campaign_b)
            await trio.sleep(0.2)
            assert not elected_b.is_set()
            proclaimed = await a.proclaim("a:2")
            assert proclaimed.revision == first.revision
            assert (await b.leader()).value == b"a:2"
            await a.resign()
            with trio.fail_after(5):
                await elected_b.wait()
        assert observed[0] in (b"a:1", b"a:2") and observed[-1] == b"b:1"
        leader = await a.leader()
        assert leader is not None and leader.value == b"b:1" and leader.revision > first.revision
        assert not a.is_leader and b.is_leader
        with pytest.raises(LeaseLost):
            await a.proclaim("a:3")  # not leading: no overwrite of b's value


async def test_a_leader_whose_lease_is_revoked_learns_it(cluster) -> None:
    _, kv = cluster
    async with kv.election("svc/x", ttl=TTL) as e:
        await e.campaign("me")
        assert e.lease is not None
        await kv.revoke_lease(e.lease.id)
        with trio.fail_after(TTL + 1):
            await e.lost()
        assert not e.is_leader
        with pytest.raises(LeaseLost):
            await e.proclaim("again")


async def test_the_blocking_client_on_real_servers() -> None:
    async with open_members(3) as members, serve_members(members) as urls:

        def use() -> list[int]:
            tokens = []
            with Client(urls) as kv:
                with kv.lease(ttl=TTL) as lease:
                    kv.put("svc/sync", "up", lease=lease.id)
                    assert not lease.wait_lost(timeout=1.5 * TTL)
                    lease.check()
                for _ in range(2):
                    with kv.lock("locks/sync", ttl=TTL) as held:
                        held.lease.check()
                        tokens.append(held.token)
                with kv.election("svc/sync-e", ttl=TTL) as e:
                    assert e.campaign("me").value == b"me"
                    assert e.is_leader
                    with e.observe() as leaders:
                        assert next(leaders).value == b"me"
                    e.resign()
                    assert e.leader() is None
                assert kv.leases() == ()
            return tokens

        tokens = await trio.to_thread.run_sync(use)
        assert tokens[0] < tokens[1]
