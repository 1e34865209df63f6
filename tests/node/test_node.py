"""The Trio runtime on the memory network, with an autojump clock: time is virtual."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

import raftkv

from .harness import RecordingMachine, open_cluster, url

pytestmark = pytest.mark.trio


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_cluster_elects_one_leader_and_applies_everywhere(autojump_clock) -> None:
    async with open_cluster(3) as c:
        with trio.fail_after(10):
            leader = await c.wait_leader()
        assert leader in (1, 2, 3)
        for i in (1, 2, 3):  # write to any member, the result comes back where it was asked
            result = await c.members[i].n.propose(f"cmd-{i}".encode())
            assert isinstance(result, int)
        for i in (1, 2, 3):  # and a linearizable read anywhere sees all of them
            seen = await c.members[i].n.read(lambda sm: list(sm.applied))
            assert sorted(seen) == [b"cmd-1", b"cmd-2", b"cmd-3"]


async def test_failover_under_proposals_applies_each_at_most_once(autojump_clock) -> None:
    async with open_cluster(3, request_timeout=2.0) as c:
        with trio.fail_after(10):
            first = await c.wait_leader()
        outcomes: dict[bytes, str] = {}

        async def writer(node_id: int) -> None:
            # Sequential writes spread over the crash and the election that follows it.
            for k in range(60):
                cmd = f"w{node_id}-{k}".encode()
                try:
                    await c.members[node_id].n.propose(cmd)
                    outcomes[cmd] = "ok"
                except raftkv.ProposalDropped:
                    outcomes[cmd] = "dropped"
                except raftkv.OutcomeUnknown:
                    outcomes[cmd] = "unknown"
                await trio.sleep(0.05)

        followers = [i for i in (1, 2, 3) if i != first]
        async with trio.open_nursery() as nursery:
            for i in followers:
                nursery.start_soon(writer, i)
            await trio.sleep(0.5)
            await c.crash(first)
        with trio.fail_after(20):
            await c.wait_leader(followers)
        await c.restart(first)
        with trio.fail_after(20):
            await c.wait_leader()
            # a barrier: one more write that succeeds everywhere
            await c.members[followers[0]].n.propose(b"barrier")
            await c.wait_until(lambda: all(b"barrier" in m.sm.applied for m in c.members.values()))
        for m in c.members.values():
            counts = m.sm.counts()
            assert max(counts.values()) == 1, f"node {m.id} applied something twice"
            for cmd, outcome in outcomes.items():
                if outcome == "ok":
                    assert counts[cmd] == 1, (m.id, cmd)
                if outcome == "dropped":
                    assert counts[cmd] == 0, (m.id, cmd)
        kinds = set(outcomes.values())
        # The crash really hit writes in flight, and writes went on after the election.
        assert "ok" in kinds and kinds & {"dropped", "unknown"}, kinds


async def test_partition_and_heal(autojump_clock) -> None:
    async with open_cluster(3) as c:
        with trio.fail_after(10):
            leader = await c.wait_leader()
        others = [i for i in (1, 2, 3) if i != leader]
        c.net.partition([leader], others)
        with trio.fail_after(10):
            new_leader = await c.wait_leader(others)
        assert new_leader != leader
        await c.members[others[0]].n.propose(b"during-partition")
        # The old leader cannot commit alone: its write fails or stays unknown.
        with pytest.raises((raftkv.ProposalDropped, raftkv.OutcomeUnknown)):
            await c.members[leader].n.propose(b"minority", timeout=2)
        c.net.heal()
        with trio.fail_after(10):
            await c.wait_leader()
            await c.wait_until(lambda: b"during-partition" in c.members[leader].sm.applied)
        assert b"minority" not in c.members[others[0]].sm.applied


async def test_lagging_follower_is_caught_up_by_snapshot(autojump_clock) -> None:
    async with open_cluster(3, snapshot_count=20, catch_up_entries=5) as c:
        with trio.fail_after(10):
            leader = await c.wait_leader()
        lagger = next(i for i in (1, 2, 3) if i != leader)
        await c.crash(lagger)
        for k in range(100):
            await c.members[leader].n.propose(f"k{k}".encode())
        assert c.members[leader].n.statistics().snapshots_taken >= 3
        await c.restart(lagger)
        with trio.fail_after(20):
            await c.wait_until(lambda: len(c.members[lagger].sm.applied) == 100)
        assert c.members[lagger].sm.applied == c.members[leader].sm.applied
        assert c.members[lagger].n.statistics().snapshots_restored >= 1


async def test_add_learner_is_promoted_and_serves(autojump_clock) -> None:
    async with open_cluster(3) as c:
        with trio.fail_after(10):
            leader = await c.wait_leader()
        for k in range(10):
            await c.members[leader].n.propose(f"k{k}".encode())
        members = await c.members[leader].n.add_member(4, url(4))
        assert members[4] == url(4)
        await c.start(4, join=True)
        with trio.fail_after(20):
            await c.wait_until(
                lambda: any(m.id == 4 and m.voter for m in c.members[leader].n.status().members)
            )
            await c.members[4].n.propose(b"from-4")
        assert c.members[4].sm.applied[:10] == [f"k{k}".encode() for k in range(10)]


async def test_promote_member_waits_for_a_caught_up_learner(autojump_clock) -> None:
    async with open_cluster(3, auto_promote=False) as c:
        with trio.fail_after(10):
            leader = await c.wait_leader()
        n = c.members[leader].n
        for k in range(10):
            await n.propose(f"k{k}".encode())
        await n.add_member(4, url(4))
        # Not started: it matches nothing yet, and a voter that far behind is refused.
        with pytest.raises(raftkv.ConfChangeRefused, match="has not caught up"):
            await n.promote_member(4)
        with pytest.raises(raftkv.ConfChangeRefused, match="already a voter"):
            await n.promote_member(next(i for i in (1, 2, 3) if i != leader))
        with pytest.raises(raftkv.ConfChangeRefused, match="not a member"):
            await n.promote_member(9)
        await c.start(4, join=True)

        def caught_up() -> bool:
            m = next(m for m in n.status().members if m.id == 4)
            return m.match is not None and m.match >= n.status().commit

        with trio.fail_after(20):
            await c.wait_until(caught_up)
        # Without auto-promotion it stays a learner until asked.
        assert not next(m for m in n.status().members if m.id == 4).voter
        await n.promote_member(4)
        assert next(m for m in n.status().members if m.id == 4).voter
        follower = next(i for i in (1, 2, 3) if i != leader)
        with pytest.raises(raftkv.NotLeader):
            await c.members[follower].n.promote_member(4)


async def test_remove_a_follower_and_it_stops(autojump_clock) -> None:
    async with open_cluster(3) as c:
        with trio.fail_after(10):
            leader = await c.wait_leader()
        victim = next(i for i in (1, 2, 3) if i != leader)
        members = await c.members[leader].n.remove_member(victim)
        assert victim not in members
        with trio.fail_after(10):
            await c.members[victim].stopped.wait()
        await c.members[leader].n.propose(b"after")


async def test_remove_the_leader_hands_over(autojump_clock) -> None:
    async with open_cluster(3) as c:
        with trio.fail_after(10):
            leader = await c.wait_leader()
        await c.members[leader].n.remove_member(leader)
        with trio.fail_after(10):
            await c.members[leader].stopped.wait()
            others = [i for i in (1, 2, 3) if i != leader]
            new = await c.wait_leader(others)
        assert new != leader
        await c.members[new].n.propose(b"after")


async def test_membership_change_on_a_follower_is_not_leader(autojump_clock) -> None:
    async with open_cluster(3) as c:
        with trio.fail_after(10):
            leader = await c.wait_leader()
        follower = next(i for i in (1, 2, 3) if i != leader)
        with pytest.raises(raftkv.NotLeader) as info:
            await c.members[follower].n.add_member(9, url(9))
        assert info.value.leader_hint == leader


async def test_shutdown_wakes_pending_waiters(autojump_clock) -> None:
    """Every waiter is woken when the node stops: a write with OutcomeUnknown (it may have been
    appended), a read with NodeClosed (nothing happened)."""
    async with open_cluster(3) as c:
        with trio.fail_after(10):
            leader = await c.wait_leader()
        c.net.partition([leader], [i for i in (1, 2, 3) if i != leader])
        errors: list[BaseException] = []

        async def waiter() -> None:
            try:
                await c.members[leader].n.propose(b"never", timeout=60)
            except raftkv.RaftError as exc:
                errors.append(exc)

        async def reader() -> None:
            try:
                await c.members[leader].n.read_barrier(timeout=60)
            except raftkv.RaftError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.5)
            nursery.start_soon(reader)
            await trio.sleep(0.5)
            await c.crash(leader)
        read_error = next(e for e in errors if not isinstance(e, raftkv.OutcomeUnknown))
        assert isinstance(read_error, raftkv.NodeClosed)
        errors.remove(read_error)
        # The write was handed to Raft: its fate is unknown, and it says so.
        assert len(errors) == 1 and isinstance(errors[0], raftkv.OutcomeUnknown), errors


async def test_storage_failure_stops_the_node_without_acknowledging(autojump_clock) -> None:
    async with open_cluster(1) as c:
        with trio.fail_after(10):
            await c.wait_leader()
        m = c.members[1]
        # The node idle (its election's writes done), so that the failure hits the proposal's.
        await trio.testing.wait_all_tasks_blocked()
        m.storage.inject_failure(after=0)
        with pytest.raises(raftkv.OutcomeUnknown):
            await m.n.propose(b"doomed")
        with trio.fail_after(5):
            await m.stopped.wait()
        assert isinstance(m.error, (raftkv.StorageFailed, BaseExceptionGroup))
        assert b"doomed" not in m.sm.applied


async def test_restart_replays_from_storage(autojump_clock) -> None:
    async with open_cluster(1, snapshot_count=5, catch_up_entries=2) as c:
        with trio.fail_after(10):
            await c.wait_leader()
        for k in range(12):
            await c.members[1].n.propose(f"k{k}".encode())
        await c.crash(1)
        await c.restart(1)
        with trio.fail_after(10):
            await c.wait_until(lambda: len(c.members[1].sm.applied) == 12)
        assert c.members[1].sm.applied == [f"k{k}".encode() for k in range(12)]


class SlowApply(RecordingMachine):
    """Takes real time per entry, as applying a large store's transactions does."""

    def apply(self, index: int, command: bytes) -> object:
        time.sleep(0.001)
        return super().apply(index, command)


async def test_a_long_log_tail_is_applied_a_slice_at_a_time(autojump_clock) -> None:
    """A restart's tail of committed entries is applied over many loop iterations, letting the
    node's other tasks (its clients) run in between, not in one long stall."""
    async with open_cluster(1, snapshot_count=100_000, max_committed_size_per_ready=1000) as c:
        with trio.fail_after(10):
            await c.wait_leader()
        commands = [b"%03d" % k + b"x" * 200 for k in range(200)]
        for command in commands:
            await c.members[1].n.propose(command)
        await c.crash(1)
        sm = c.members[1].sm = SlowApply()
        seen: list[int] = []

        async def watch() -> None:
            for _ in range(100_000):  # bounded: a node that never lets it run fails the test
                seen.append(len(sm.applied))
                if seen[-1] == len(commands):
                    return
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            await c.restart(1)
        assert sm.applied == commands
        assert len({n for n in seen if 0 < n < len(commands)}) >= 5, sorted(set(seen))


async def test_a_fresh_node_needs_founding_peers() -> None:
    from raftkv.storage import MemoryStorage
    from raftkv.transport import MemoryNetwork

    net = MemoryNetwork()
    async with net.open_transport(1) as t:
        with pytest.raises(ValueError, match="founding"):
            async with raftkv.open_node(
                raftkv.NodeConfig(id=1),
                storage=MemoryStorage(),
                transport=t,
                state_machine=RecordingMachine(),
                peers={2: url(2)},
            ):
                pass


class ChunkedMachine(RecordingMachine):
    """Streams its snapshot a command per chunk, noting how far apply() got meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.applied_during_snapshots: list[int] = []

    def snapshot_chunks(self):  # type: ignore[no-untyped-def]
        view = list(self.applied)  # the state now; the chunks are made later

        def chunks():  # type: ignore[no-untyped-def]
            for i, command in enumerate(view):
                self.applied_during_snapshots.append(len(self.applied))
                yield (b"\x00" if i else b"") + command

        return chunks()


async def test_snapshots_are_built_while_the_node_keeps_applying(autojump_clock) -> None:
    from raftkv._envelope import decode_snapshot
    from raftkv.storage import MemoryStorage
    from raftkv.transport import MemoryNetwork

    sm = ChunkedMachine()
    storage = MemoryStorage()
    async with MemoryNetwork().open_transport(1) as t:
        config = raftkv.NodeConfig(id=1, snapshot_count=20, catch_up_entries=2, seed=1)
        async with raftkv.open_node(
            config, storage=storage, transport=t, state_machine=sm, peers={1: url(1)}
        ) as node:
            with trio.fail_after(10):
                await node.wait_leader()
                for k in range(60):
                    await node.propose(f"k{k}".encode())
            assert node.statistics().snapshots_taken >= 1
    # Entries were applied between the chunks of a snapshot being built ...
    assert max(sm.applied_during_snapshots) > min(sm.applied_during_snapshots)
    # ... and the saved snapshot holds exactly the state at its own index.
    state = await storage.load()
    assert state.snapshot is not None
    _, app = decode_snapshot(state.snapshot.data)
    restored = RecordingMachine()
    restored.restore(app)
    assert len(restored.applied) >= 20
    assert restored.applied == sm.applied[: len(restored.applied)]


async def test_a_forward_lost_with_its_leader_is_answered_dropped_at_once(autojump_clock) -> None:
    """A follower's write whose forward never reached the leader is answered "dropped" as soon
    as the follower applies the next leader's first entry, not at its timeout; and it never
    applies anywhere."""
    async with open_cluster(3, request_timeout=30.0) as c:
        with trio.fail_after(10):
            old = await c.wait_leader()
        follower, other = (i for i in (1, 2, 3) if i != old)
        c.net.cut(follower, old)  # the forwarded proposal is lost on the way
        cut_before = c.net.statistics().cut
        answers: list[tuple[str, float]] = []

        async def write() -> None:
            try:
                await c.members[follower].n.propose(b"lost")
                answers.append(("ok", trio.current_time()))
            except raftkv.ProposalDropped as exc:
                assert str(exc).startswith("dropped: leader changed"), exc
                answers.append(("dropped", trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            with trio.fail_after(10):
                await c.wait_until(lambda: c.net.statistics().cut > cut_before)
            c.net.partition([old], [follower, other])  # a new leader, in a new term
            partitioned_at = trio.current_time()
            with trio.fail_after(10):
                await c.wait_until(lambda: bool(answers))
        [(outcome, answered_at)] = answers
        assert outcome == "dropped"
        # Within two election timeouts of the leader's loss (a randomized timeout is at most
        # twice election_ticks * tick_interval: 2 s with the defaults), not at the 30 s timeout.
        assert answered_at - partitioned_at < 2 * 2.0, answered_at - partitioned_at
        c.net.heal()
        with trio.fail_after(20):
            await c.wait_leader()
            await c.members[follower].n.propose(b"barrier")
            await c.wait_until(lambda: all(b"barrier" in m.sm.applied for m in c.members.values()))
        assert all(b"lost" not in m.sm.applied for m in c.members.values())
