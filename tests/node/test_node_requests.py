"""What a caller of the runtime sees: a request right after start waits for the election
instead of failing, a lone voter leads at once, membership changes wait for a new leader's
first entry, and what stops a node comes out as the documented exception."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import raftkv
from raftkv.storage import MemoryStorage
from raftkv.transport import MemoryNetwork

from .harness import RecordingMachine, open_cluster, url

pytestmark = pytest.mark.trio


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_proposal_right_after_start_waits_for_the_election(autojump_clock) -> None:
    async with open_cluster(3) as c:
        started = trio.current_time()
        result = await c.members[2].n.propose(b"first")  # no leader yet: it waits for one
        assert result == 1
        assert trio.current_time() - started < c.members[2].n.config.request_timeout
        assert await c.members[3].n.read(lambda sm: list(sm.applied)) == [b"first"]


async def test_without_a_quorum_a_proposal_still_fails_after_its_timeout(autojump_clock) -> None:
    net = MemoryNetwork()
    async with (
        net.open_transport(1, peers=[2, 3]) as transport,
        raftkv.open_node(
            raftkv.NodeConfig(id=1),
            storage=MemoryStorage(),
            transport=transport,
            state_machine=RecordingMachine(),
            peers={1: url(1), 2: url(2), 3: url(3)},
        ) as node,
    ):
        started = trio.current_time()
        with pytest.raises(raftkv.NotLeader):
            await node.propose(b"x", timeout=3)
        assert trio.current_time() - started == pytest.approx(3, abs=0.2)
        with pytest.raises(raftkv.NotLeader):
            await node.read_barrier(timeout=1)


async def test_a_lone_voter_leads_at_once(autojump_clock) -> None:
    net = MemoryNetwork()
    started = trio.current_time()
    async with (
        net.open_transport(1) as transport,
        raftkv.open_node(
            raftkv.NodeConfig(id=1),  # a 1 s election timeout
            storage=(storage := MemoryStorage()),
            transport=transport,
            state_machine=RecordingMachine(),
            peers={1: url(1)},
        ) as node,
    ):
        await node.propose(b"x")
        assert trio.current_time() - started < 0.5
    async with (  # and again on restart
        net.open_transport(1) as transport,
        raftkv.open_node(
            raftkv.NodeConfig(id=1),
            storage=storage,
            transport=transport,
            state_machine=RecordingMachine(),
        ) as node,
    ):
        restarted = trio.current_time()
        await node.propose(b"y")
        assert trio.current_time() - restarted < 0.5


async def test_a_membership_change_right_after_an_election_waits_for_it(autojump_clock) -> None:
    async with open_cluster(3) as c:
        leader = c.members[await c.wait_leader()].n
        members = await leader.add_member(4, url(4))  # no 'not committed an entry yet'
        assert 4 in members


async def test_the_body_error_comes_out_unwrapped() -> None:
    net = MemoryNetwork()
    with pytest.raises(KeyError, match="from the body"):
        async with (
            net.open_transport(1) as transport,
            raftkv.open_node(
                raftkv.NodeConfig(id=1),
                storage=MemoryStorage(),
                transport=transport,
                state_machine=RecordingMachine(),
                peers={1: url(1)},
            ),
        ):
            raise KeyError("from the body")


async def test_a_removed_id_is_never_used_again(autojump_clock) -> None:
    async with open_cluster(3, snapshot_count=5, catch_up_entries=0) as c:
        leader = c.members[await c.wait_leader()].n
        await leader.add_member(4, url(4))
        await leader.remove_member(4)
        with pytest.raises(raftkv.ConfChangeRefused, match="never used again"):
            await leader.add_member(4, url(4))
        for i in range(12):  # snapshots now carry the removed ids
            await leader.propose(b"x%d" % i)
        follower = next(i for i in (1, 2, 3) if i != leader.id)
        await c.crash(follower)
        await c.restart(follower)
        await c.wait_until(lambda: c.members[follower].n.status().leader is not None)
        restarted = c.members[follower].n
        assert restarted.statistics().snapshots_restored == 0  # its own snapshot, from disk
        with pytest.raises(raftkv.ConfChangeRefused, match="never used again"):
            await restarted.add_member(4, url(4))


async def test_reads_asked_at_once_on_the_leader_and_a_follower_all_return(autojump_clock) -> None:
    """Found by the library guide's TCP example: every node numbered its ReadIndex requests
    from 1, so the leader's own first read and a follower's had the same context at the leader,
    and one of them was never answered."""
    async with open_cluster(3) as c:
        leader = await c.wait_leader()
        await c.members[leader].n.propose(b"x")
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for i in (1, 2, 3):
                    nursery.start_soon(c.members[i].n.read_barrier)
