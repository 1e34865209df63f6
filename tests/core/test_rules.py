"""One test per rule of the Raft paper and thesis, against ``RawNode`` directly.

Each docstring quotes or names the rule. The helpers here are deliberately tiny: messages are
delivered by hand so each test shows exactly the exchange the rule is about.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkv.core import (
    AppendEntries,
    AppendEntriesResponse,
    ConfChange,
    ConfChangeRefused,
    ConfChangeType,
    Config,
    Entry,
    Heartbeat,
    HeartbeatResponse,
    MemoryLogStore,
    Message,
    NotLeader,
    ProposalDropped,
    Propose,
    RawNode,
    ReadIndexRequest,
    Ready,
    ReadyContractError,
    RequestVote,
    RequestVoteResponse,
    Role,
    TimeoutNow,
    bootstrap,
    describe,
)
from raftkv.testing import RandomSchedule, handle_ready, replay, sweep_cluster

TESTDATA = Path(__file__).resolve().parent.parent / "testdata"


class Net:
    """N nodes; Readys are handled by the contract (``raftkv.testing.handle_ready``, the
    simulator's driver); messages wait in ``inflight``."""

    def __init__(self, n: int, **config: object) -> None:
        self.stores = {}
        self.nodes: dict[int, RawNode] = {}
        self.inflight: list[Message] = []
        self.applied: dict[int, list[Entry]] = {}
        for i in range(1, n + 1):
            store = MemoryLogStore()
            bootstrap(store, {j: b"" for j in range(1, n + 1)})
            self.stores[i] = store
            self.nodes[i] = RawNode(Config(id=i, **config), store, random.Random(i))  # type: ignore[arg-type]
            self.applied[i] = []
        self.process()

    def process(self, *ids: int) -> None:
        for i in ids or sorted(self.nodes):
            node = self.nodes[i]
            while node.has_ready():
                handle_ready(
                    node,
                    self.stores[i],
                    node.ready(),
                    send=self.inflight.extend,
                    apply=functools.partial(self._apply, i),
                )

    def _apply(self, i: int, rd: Ready) -> None:
        self.applied[i].extend(rd.committed_entries)

    def take(self, kind: type | None = None, dst: int | None = None) -> list[Message]:
        taken = [
            m
            for m in self.inflight
            if (kind is None or isinstance(m, kind)) and (dst is None or m.dst == dst)
        ]
        self.inflight = [m for m in self.inflight if m not in taken]
        return taken

    def deliver_all(self, rounds: int = 50) -> None:
        for _ in range(rounds):
            self.process()
            if not self.inflight:
                return
            msgs, self.inflight = self.inflight, []
            for m in msgs:
                if m.dst in self.nodes:
                    self.nodes[m.dst].step(m)
        self.process()

    def elect(self, leader: int) -> None:
        self.nodes[leader].campaign()
        self.deliver_all()
        assert self.nodes[leader].role is Role.LEADER


def test_a_higher_term_turns_anyone_into_a_follower() -> None:
    """§5.1: "If a server's current term is smaller than the other's, it updates its current
    term ... If a candidate or leader discovers that its term is out of date, it immediately
    reverts to follower state." """
    net = Net(3)
    net.elect(1)
    leader = net.nodes[1]
    term = leader.term
    leader.step(AppendEntriesResponse(term=term + 5, src=2, dst=1, index=0))
    assert leader.role is Role.FOLLOWER and leader.term == term + 5


def test_a_stale_leader_is_told_the_current_term() -> None:
    """§5.1: "If a server receives a request with a stale term number, it rejects the request"
    (and its answer carries the newer term, so the stale leader steps down)."""
    net = Net(3)
    net.elect(1)
    follower = net.nodes[2]
    follower.step(
        AppendEntries(term=1, src=3, dst=2, prev_index=0, prev_term=0, entries=(), commit=0)
    )
    net.process(2)
    (reply,) = net.take(AppendEntriesResponse, dst=3)
    assert reply.term == follower.term > 1


def test_one_vote_per_term() -> None:
    """§5.2: "each server will vote for at most one candidate in a given term"."""
    net = Net(3, pre_vote=False, check_quorum=False)
    voter = net.nodes[3]
    last = net.stores[3].last_index()
    voter.step(RequestVote(term=5, src=1, dst=3, last_index=last, last_term=1))
    voter.step(RequestVote(term=5, src=2, dst=3, last_index=last, last_term=1))
    net.process(3)
    replies = {m.dst: m.reject for m in net.take(RequestVoteResponse)}
    assert replies == {1: False, 2: True}


def test_no_vote_for_a_less_up_to_date_log() -> None:
    """§5.4.1: "the voter denies its vote if its own log is more up-to-date than that of the
    candidate"."""
    net = Net(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.nodes[1].propose(b"x")
    net.deliver_all()
    voter = net.nodes[3]
    term = voter.term + 1
    voter.step(RequestVote(term=term, src=2, dst=3, last_index=3, last_term=1))
    net.process(3)
    (reply,) = net.take(RequestVoteResponse, dst=2)
    assert reply.reject


def test_election_timeouts_are_randomized_between_one_and_two_timeouts() -> None:
    """§5.2: "election timeouts are chosen randomly from a fixed interval"."""
    seen = set()
    for seed in range(40):
        store = MemoryLogStore()
        bootstrap(store, {1: b"", 2: b"", 3: b""})
        node = RawNode(Config(id=1, election_ticks=10), store, random.Random(seed))
        rd = node.ready()
        store.append(rd.entries)
        node.advance(rd)
        for ticks in range(1, 40):
            node.tick()
            if node.role is not Role.FOLLOWER:
                seen.add(ticks)
                break
    assert min(seen) >= 10 and max(seen) < 20 and len(seen) > 3


def test_append_rejected_on_log_mismatch_with_a_hint() -> None:
    """§5.3: "If a follower's log does not contain an entry at prevLogIndex whose term matches
    prevLogTerm, it rejects" — with a hint that lets the leader skip a whole term."""
    net = Net(3)
    follower = net.nodes[2]
    term = follower.term + 1
    follower.step(
        AppendEntries(term=term, src=1, dst=2, prev_index=10, prev_term=term, entries=(), commit=0)
    )
    net.process(2)
    (reply,) = net.take(AppendEntriesResponse, dst=1)
    assert reply.reject and reply.index == 10
    assert (reply.hint_index, reply.hint_term) == (3, 1)  # our last entry, of term 1


def test_a_conflicting_suffix_is_truncated() -> None:
    """§5.3: "If an existing entry conflicts with a new one (same index but different terms),
    delete the existing entry and all that follow it"."""
    net = Net(3)
    follower, store = net.nodes[2], net.stores[2]
    follower.step(
        AppendEntries(
            term=2,
            src=1,
            dst=2,
            prev_index=3,
            prev_term=1,
            entries=(Entry(2, 4, data=b"a"), Entry(2, 5, data=b"b")),
            commit=3,
        )
    )
    net.process(2)
    follower.step(
        AppendEntries(
            term=3,
            src=3,
            dst=2,
            prev_index=3,
            prev_term=1,
            entries=(Entry(3, 4, data=b"c"),),
            commit=3,
        )
    )
    net.process(2)
    assert store.last_index() == 4 and store.entries(4, 5)[0].data == b"c"


def test_previous_term_entries_do_not_commit_by_counting() -> None:
    """§5.4.2 (Figure 8): "Raft never commits log entries from previous terms by counting
    replicas. Only log entries from the leader's current term are committed by counting"."""
    net = Net(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    old_term = net.nodes[1].term
    net.nodes[1].propose(b"old")
    net.process(1)
    net.take()  # the entry reaches no one
    leader = net.nodes[1]
    leader.step(AppendEntriesResponse(term=old_term + 1, src=3, dst=1, index=0))  # deposed
    # Node 1 is elected again in a later term; its longer log wins it the votes.
    leader.campaign()
    net.process(1)
    for m in net.take(RequestVote):
        net.nodes[m.dst].step(m)
    net.process(2, 3)
    for m in net.take(RequestVoteResponse):
        leader.step(m)
    net.process(1)
    assert leader.role is Role.LEADER and leader.term > old_term
    entries = net.stores[1].entries(1, net.stores[1].last_index() + 1)
    old_index = next(e.index for e in entries if e.data == b"old")
    # Node 2 receives the old entry but never the new term's no-op.
    for _ in range(5):
        for m in net.take(AppendEntries, dst=2):
            kept = tuple(e for e in m.entries if e.index <= old_index)
            net.nodes[2].step(
                AppendEntries(m.term, m.src, m.dst, m.prev_index, m.prev_term, kept, m.commit)
            )
        net.process(2)
        for m in net.take(AppendEntriesResponse, dst=1):
            leader.step(m)
        net.process(1)
    assert net.stores[2].last_index() == old_index
    assert leader.commit < old_index  # replicated on a majority, yet not committed


def test_heartbeats_carry_commit_capped_at_the_followers_match() -> None:
    """§5.3: the leader's commit index reaches followers with heartbeats, never beyond what
    the follower is known to hold (a follower must not commit entries it lacks)."""
    net = Net(3)
    net.elect(1)
    net.nodes[1].propose(b"x")
    net.deliver_all()
    for _ in range(2):
        net.nodes[1].tick()
    net.process(1)
    beats = net.take(Heartbeat)
    assert beats and all(b.commit <= net.nodes[1].commit for b in beats)


def _commit_and_count_empty_appends(net: Net, propose: int) -> int:
    """Commit one proposal made on ``propose`` by delivering everything; count the empty
    appends the leader sent meanwhile (the commit-only announcements)."""
    net.nodes[propose].propose(b"x")
    empty = 0
    for _ in range(20):
        net.process()
        if not net.inflight:
            break
        msgs, net.inflight = net.inflight, []
        empty += sum(1 for m in msgs if isinstance(m, AppendEntries) and not m.entries)
        for m in msgs:
            net.nodes[m.dst].step(m)
    return empty


def test_a_new_commit_index_is_announced_at_once_by_default() -> None:
    """§5.3: followers learn the commit index from the leader's next AppendEntries; with
    ``broadcast_commit`` (the default) the leader sends one right away, empty if need be."""
    net = Net(3)
    net.elect(1)
    assert _commit_and_count_empty_appends(net, 1) == 2
    assert net.nodes[2].commit == net.nodes[3].commit == net.nodes[1].commit


def test_without_broadcast_commit_the_index_travels_with_the_next_heartbeat() -> None:
    """``broadcast_commit=False``: no empty append per commit; followers learn the index from
    the next append or heartbeat, capped at what they hold."""
    net = Net(3, broadcast_commit=False)
    net.elect(1)
    assert _commit_and_count_empty_appends(net, 1) == 0
    leader_commit = net.nodes[1].commit
    assert net.nodes[2].commit < leader_commit and net.nodes[3].commit < leader_commit
    net.nodes[1].tick()
    net.deliver_all()
    assert net.nodes[2].commit == net.nodes[3].commit == leader_commit
    # The next proposal's append carries the previous commit too.
    net.nodes[1].propose(b"y")
    net.process(1)
    appends = net.take(AppendEntries)
    assert {m.dst for m in appends} == {2, 3}
    assert all(m.entries and m.commit == leader_commit for m in appends)


def test_without_broadcast_commit_a_forwarded_proposal_is_announced_at_once() -> None:
    """The follower that forwarded a proposal waits to apply it (its client waits): the leader
    announces that commit at once even with ``broadcast_commit=False``."""
    net = Net(3, broadcast_commit=False)
    net.elect(1)
    assert _commit_and_count_empty_appends(net, 2) == 2
    assert net.nodes[2].commit == net.nodes[1].commit
    assert any(e.data == b"x" for e in net.applied[2])


def test_without_broadcast_commit_a_membership_change_is_announced_at_once() -> None:
    """Every member applies a membership change: its commit goes out at once."""
    net = Net(3, broadcast_commit=False)
    net.elect(1)
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4, b""))
    net.deliver_all()
    assert net.nodes[2].commit == net.nodes[3].commit == net.nodes[1].commit
    assert 4 in net.nodes[2].status().conf_state.learners


def test_without_broadcast_commit_a_new_leaders_first_entry_is_announced_at_once() -> None:
    """Once a follower applied the new leader's first entry, whatever it forwarded in an earlier
    term and did not apply will never apply (its callers are told so at once): that commit goes
    out at once, with ``broadcast_commit=False`` too."""
    net = Net(5, broadcast_commit=False)
    net.elect(1)  # the no-op follows the bootstrap entries, all committed already
    # (A follower whose acknowledgement came before the quorum's would otherwise learn it
    # only with the next heartbeat.)
    assert {net.nodes[i].commit for i in range(2, 6)} == {net.nodes[1].commit}
    assert all(net.applied[i][-1].term == net.nodes[1].term for i in range(2, 6))


def test_without_broadcast_commit_a_follower_read_learns_the_commit_it_waits_for() -> None:
    """A follower's ReadIndex answer names an index it must apply; with ``broadcast_commit=False``
    nothing else may tell it that index committed (its own ack came after the read's heartbeat
    round started), so the leader says so with the answer."""
    net = Net(3, broadcast_commit=False)
    net.elect(1)
    net.nodes[1].propose(b"x")
    net.process(1)
    held = net.take(AppendEntries, dst=2)  # node 2 gets x only after its read is under way
    net.deliver_all()  # node 3's ack commits x; no one is told
    index = net.nodes[1].commit
    assert net.nodes[2].commit < index
    net.nodes[2].read_index(b"read")
    net.process(2)
    net.deliver_all(rounds=1)  # the request reaches the leader: heartbeats go out
    net.inflight[:0] = held  # x reaches node 2 just before the heartbeat (commit capped: old)
    net.deliver_all()
    assert net.nodes[2].commit >= index
    assert any(e.data == b"x" for e in net.applied[2])


def test_pre_vote_does_not_raise_terms() -> None:
    """Thesis §9.6: a pre-candidate polls without incrementing its term; a node partitioned
    away cannot disrupt the cluster when it returns."""
    net = Net(3)
    net.elect(1)
    lone = net.nodes[3]
    term = lone.term
    for _ in range(100):
        lone.tick()
        net.process(3)
        net.take(dst=1)
        net.take(dst=2)
    assert lone.term == term and lone.role is Role.PRE_CANDIDATE


def test_check_quorum_steps_a_cut_off_leader_down() -> None:
    """Thesis §6.2: "a leader steps down if an election timeout elapses without a successful
    round of heartbeats to a majority of its cluster"."""
    net = Net(3)
    net.elect(1)
    leader = net.nodes[1]
    for _ in range(25):
        leader.tick()
        net.process(1)
        net.take()
    assert leader.role is Role.FOLLOWER


def test_votes_are_ignored_while_a_leader_is_heard_from() -> None:
    """Thesis §4.2.3: a server that heard from a current leader within the minimum election
    timeout does not grant (or even consider) a vote."""
    net = Net(3, pre_vote=False)
    net.elect(1)
    follower = net.nodes[2]
    term = follower.term
    follower.step(RequestVote(term=term + 1, src=3, dst=2, last_index=100, last_term=100))
    net.process(2)
    assert follower.term == term and not net.take(RequestVoteResponse, dst=3)
    # A leadership transfer's campaign is allowed through.
    follower.step(
        RequestVote(term=term + 1, src=3, dst=2, last_index=100, last_term=100, transfer=True)
    )
    net.process(2)
    assert follower.term == term + 1


def test_the_ready_contract_is_enforced() -> None:
    """The Ready contract: no input between ready() and advance(), advance takes that Ready."""
    net = Net(1)
    node = net.nodes[1]
    node.campaign()
    rd = node.ready()
    with pytest.raises(ReadyContractError):
        node.tick()
    with pytest.raises(ReadyContractError):
        node.ready()
    with pytest.raises(ReadyContractError):
        node.advance(type(rd)())
    node.advance(rd)
    with pytest.raises(ReadyContractError):
        node.advance(rd)


def test_read_index_waits_for_a_heartbeat_quorum() -> None:
    """Thesis §6.4: the leader "sends heartbeats ... once a majority acknowledge, it knows it
    was the leader at the time" and only then serves the read."""
    net = Net(3)
    net.elect(1)
    leader = net.nodes[1]
    leader.read_index(b"r1")
    net.process(1)
    beats = net.take(Heartbeat)
    assert {b.context for b in beats} == {b"r1"}
    assert not leader.has_ready()  # nothing released before an acknowledgement
    for b in beats[:1]:  # a single ack plus ourselves is a quorum of three
        net.nodes[b.dst].step(b)
        net.process(b.dst)
        for m in net.take(HeartbeatResponse, dst=1):
            leader.step(m)
    rd = leader.ready()
    rd_states = list(rd.read_states)
    leader.advance(rd)
    assert [(s.context, s.index) for s in rd_states] == [(b"r1", leader.commit)]


def test_conf_change_guards() -> None:
    """Ongaro, raft-dev 2015: a leader appends a configuration change only after committing an
    entry of its term, and one change at a time."""
    net = Net(3)
    net.nodes[1].campaign()
    net.process(1)
    for m in net.take(RequestVote):
        net.nodes[m.dst].step(m)
    net.deliver_all(rounds=1)
    leader = net.nodes[1]
    if leader.role is Role.LEADER and leader.commit < leader.last_index:
        with pytest.raises(ConfChangeRefused):
            leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    net.deliver_all()
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    with pytest.raises(ConfChangeRefused, match="in progress"):
        leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 5))
    net.deliver_all()
    assert leader.conf_state.learners == (4,)
    with pytest.raises(NotLeader):
        net.nodes[2].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))


def test_the_last_voter_cannot_be_removed() -> None:
    net = Net(1)
    net.elect(1)
    with pytest.raises(ConfChangeRefused, match="last voter"):
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))


def test_a_learner_never_campaigns() -> None:
    """Learners receive the log but never vote or campaign (thesis §4.2.1)."""
    store = MemoryLogStore()
    node = RawNode(Config(id=9), store, random.Random(1))  # joining: no configuration yet
    for _ in range(100):
        node.tick()
    assert node.role is Role.FOLLOWER and not node.has_ready()


def test_uncommitted_bytes_are_capped() -> None:
    net = Net(3, max_uncommitted_entries_size=1000)
    net.elect(1)
    leader = net.nodes[1]
    leader.propose(b"x" * 800)
    with pytest.raises(ProposalDropped, match="uncommitted"):
        leader.propose(b"y" * 800)


def test_committed_entries_are_handed_out_a_bounded_batch_per_ready() -> None:
    """max_committed_size_per_ready: a large commit is applied over several Readies (a restart
    or a catching-up follower never applies everything in one loop iteration), in order, each
    at most the limit unless a single entry is over it."""
    net = Net(3, max_committed_size_per_ready=1000)
    net.elect(1)
    leader = net.nodes[1]
    for i in range(30):
        leader.propose(bytes([i]) * 300)
    leader.propose(b"z" * 2500)  # over the limit alone: handed out on its own
    sizes: list[list[int]] = []
    applied: list[bytes] = []

    def apply(rd: Ready) -> None:
        sizes.append([len(e.data) for e in rd.committed_entries])
        applied.extend(e.data for e in rd.committed_entries if e.data)

    for _ in range(50):
        for m in net.take():
            net.nodes[m.dst].step(m)
        for i in (1, 3):
            net.process(i)
        while net.nodes[2].has_ready():
            node = net.nodes[2]
            handle_ready(node, net.stores[2], node.ready(), send=net.inflight.extend, apply=apply)
    assert applied == [bytes([i]) * 300 for i in range(30)] + [b"z" * 2500]
    batches = [b for b in sizes if b]
    assert len(batches) > 5
    assert all(sum(b) <= 1000 or len(b) == 1 for b in batches)
    assert [b for b in batches if sum(b) > 1000] == [[2500]]


def test_a_follower_that_lost_acknowledged_entries_is_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A follower whose data was wiped and that came back under its old id answers with a log
    ending below what it acknowledged: the leader says so (once), naming the fix."""
    net = Net(3)
    net.elect(1)
    for i in range(5):
        net.nodes[1].propose(b"x%d" % i)
    net.deliver_all()
    store = MemoryLogStore()
    bootstrap(store, {j: b"" for j in (1, 2, 3)})
    net.stores[2], net.nodes[2] = store, RawNode(Config(id=2), store, random.Random(2))
    with caplog.at_level(logging.WARNING, logger="raftkv.core"):
        for i in range(3):
            net.nodes[1].propose(b"y%d" % i)
            net.deliver_all()
    lost = [r.getMessage() for r in caplog.records if "lost entries" in r.getMessage()]
    assert len(lost) == 1
    assert "node 2 lost entries it had acknowledged" in lost[0] and "add a new member" in lost[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="raftkv.core"):
        net.nodes[1].propose(b"z")
        net.deliver_all()
    assert not [r for r in caplog.records if "lost entries" in r.getMessage()]


def test_proposals_are_refused_during_a_transfer_which_times_out() -> None:
    """Thesis §3.10: during a transfer the leader stops accepting client requests; it aborts the
    transfer if it does not complete within an election timeout."""
    net = Net(3)
    net.elect(1)
    leader = net.nodes[1]
    leader.transfer_leadership(2)
    net.process(1)
    assert net.take(TimeoutNow, dst=2)  # node 2 is up to date: told at once
    with pytest.raises(ProposalDropped, match="transfer"):
        leader.propose(b"x")
    for _ in range(12):  # the target never campaigns (we dropped TimeoutNow): abandoned
        leader.tick()
        net.process(1)
        for m in net.take():
            if isinstance(m, Heartbeat):
                net.nodes[m.dst].step(m)
        net.process(2, 3)
        for m in net.take(HeartbeatResponse, dst=1):
            leader.step(m)
    assert leader.role is Role.LEADER
    leader.propose(b"after")


def test_remote_garbage_never_raises() -> None:
    """Remote input never raises out of step(): unknown senders, wrong destinations, stale or
    nonsensical messages are dropped."""
    net = Net(3)
    net.elect(1)
    node = net.nodes[2]
    for m in [
        AppendEntries(
            term=99, src=42, dst=2, prev_index=10**9, prev_term=5, entries=(), commit=10**9
        ),
        AppendEntriesResponse(term=0, src=1, dst=2, index=7),
        RequestVoteResponse(term=1, src=77, dst=2, reject=False),
        Heartbeat(term=1, src=1, dst=3, commit=5),  # not for us
        TimeoutNow(term=0, src=1, dst=2),
    ]:
        node.step(m)
    net.process(2)


def test_a_leader_removing_itself_stays_until_the_others_know() -> None:
    """Thesis §4.2.2: a leader may manage a configuration that excludes it. A leader that applied
    its own removal keeps leading until a quorum of the new configuration acknowledged a commit
    index covering the removal; otherwise, with two voters, the survivor could wait forever."""
    net = Net(2)
    net.elect(1)
    leader, other = net.nodes[1], net.nodes[2]
    leader.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    net.process(1)
    for m in net.take(AppendEntries, dst=2):
        other.step(m)
    net.process(2)
    for m in net.take(AppendEntriesResponse, dst=1):
        leader.step(m)
    net.process(1)  # commits and applies its removal
    net.take()  # every message telling node 2 about the commit is lost
    assert not leader.removed and leader.role is Role.LEADER
    assert other.commit < leader.commit
    for _ in range(3):  # the retiring leader keeps telling: heartbeats get through now
        leader.tick()
        net.deliver_all()
    assert leader.removed and leader.role is Role.FOLLOWER
    for _ in range(40):
        other.tick()
        net.process(2)
        net.take(dst=1)  # node 1 is gone
    assert other.role is Role.LEADER and other.conf_state.voters == (2,)


# -- which messages wait for persistence (thesis §10.2.1) ------------------------------------------


def _ready(node: RawNode) -> Ready:
    """Take one Ready and hand it straight back (the test only looks at it)."""
    rd = node.ready()
    node.advance(rd)
    return rd


def test_votes_and_acknowledgements_wait_until_durable() -> None:
    """Thesis §10.2.1: a message that promises durable state (a vote, an acknowledged entry)
    leaves only once the Ready that makes it durable is persisted."""
    net = Net(3, pre_vote=False)
    candidate, voter = net.nodes[1], net.nodes[2]
    candidate.campaign()
    rd = candidate.ready()
    assert rd.must_sync and not rd.messages
    assert {type(m) for m in rd.persisted_messages} == {RequestVote}
    candidate.advance(rd)
    voter.step(rd.persisted_messages[0])
    rd = _ready(voter)
    assert [(type(m), m.reject) for m in rd.persisted_messages] == [(RequestVoteResponse, False)]
    assert not rd.messages


def test_a_leaders_appends_and_heartbeats_leave_before_its_own_write() -> None:
    """Thesis §10.2.1: "the leader can write to its disk in parallel with replicating": its
    appends promise nothing, the followers' answers are what count."""
    net = Net(3)
    net.elect(1)
    leader = net.nodes[1]
    leader.propose(b"x")
    leader.tick()
    rd = _ready(leader)
    assert rd.entries and rd.must_sync
    assert {type(m) for m in rd.messages} == {AppendEntries, Heartbeat}
    assert not rd.persisted_messages
    follower = net.nodes[2]
    for m in rd.messages:
        if m.dst == 2:
            follower.step(m)
    rd = _ready(follower)
    assert rd.entries and not rd.messages
    assert {type(m) for m in rd.persisted_messages} == {AppendEntriesResponse, HeartbeatResponse}


def test_a_message_waits_while_its_term_is_not_durable() -> None:
    """A node that forgot a term in a crash could take it again: whatever carries a term waits
    until that term is durable, even a request that promises nothing."""
    net = Net(3)
    net.elect(1)
    follower = net.nodes[2]
    term = follower.term + 1
    follower.step(Heartbeat(term=term, src=1, dst=2, commit=0))  # a new leader's term
    follower.read_index(b"r1")
    rd = _ready(follower)
    assert rd.hard_state is not None and rd.hard_state.term == term
    assert [type(m) for m in rd.persisted_messages] == [HeartbeatResponse, ReadIndexRequest]
    assert not rd.messages
    follower.read_index(b"r2")  # the term is durable now: nothing to wait for
    rd = _ready(follower)
    assert [type(m) for m in rd.messages] == [ReadIndexRequest] and not rd.persisted_messages


def test_a_lone_voter_announces_a_commit_only_once_its_log_holds_it() -> None:
    """A lone voter commits an entry as it appends it; an append that announced that commit
    before the leader's own write could make a learner apply an entry the leader's crash loses
    (tests/testdata/early_send_lone_voter_crash.txt)."""
    net = Net(1)
    net.elect(1)
    leader = net.nodes[1]
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 2))
    net.stores[2] = MemoryLogStore()  # joining: it learns everything from the leader
    net.nodes[2] = RawNode(Config(id=2), net.stores[2], random.Random(2))
    net.applied[2] = []
    net.deliver_all()
    assert net.nodes[2].commit == leader.commit
    leader.propose(b"x")
    rd = _ready(leader)
    assert rd.entries and rd.hard_state is not None and rd.hard_state.commit == rd.entries[-1].index
    (append,) = rd.persisted_messages
    assert isinstance(append, AppendEntries) and append.commit == rd.entries[-1].index
    assert not rd.messages


def test_a_ready_with_nothing_to_persist_holds_nothing_back() -> None:
    """No message promises a commit index: a Ready that only moves it sends everything at once."""
    net = Net(3)
    net.elect(1)
    leader = net.nodes[1]
    leader.tick()
    leader.step(RequestVote(term=leader.term - 1, src=3, dst=1, last_index=0, last_term=0))
    rd = _ready(leader)
    assert not rd.must_sync and not rd.persisted_messages
    assert rd.messages


# -- one heartbeat and one empty append per peer and Ready -----------------------------------------


def redundant_messages(rd: Ready) -> list[str]:
    """Messages of ``rd`` that another message of it to the same peer makes useless: a second
    Heartbeat with the same context, a second AppendEntries without entries, and an
    AppendEntries without entries followed by any other AppendEntries."""
    found = []
    heartbeats: set[tuple[int, bytes]] = set()
    empty_appends: set[int] = set()
    for m in rd.messages + rd.persisted_messages:
        if isinstance(m, Heartbeat):
            if (m.dst, m.context) in heartbeats:
                found.append(describe(m))
            heartbeats.add((m.dst, m.context))
        elif isinstance(m, AppendEntries):
            if m.dst in empty_appends:
                found.append(f"{describe(m)} after an empty append")
            if not m.entries:
                empty_appends.add(m.dst)
    return found


@pytest.fixture
def no_redundant_messages(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every Ready handed out while the test runs is checked; the offenders are collected."""
    found: list[str] = []
    original = RawNode.ready

    def ready(self: RawNode) -> Ready:
        rd = original(self)
        found.extend(f"node {self.id}: {line}" for line in redundant_messages(rd))
        return rd

    monkeypatch.setattr(RawNode, "ready", ready)
    yield found


def test_no_ready_sends_a_peer_the_same_heartbeat_or_empty_append_twice(
    no_redundant_messages: list[str],
) -> None:
    """Several ticks between two Readys, a heartbeat answer that resumes a probe just before a
    commit is announced, a retiring leader's rounds: each Ready carries one heartbeat and one
    empty append per peer (every scenario file and a few random schedules, both orders)."""
    for path in sorted(TESTDATA.glob("*.txt")):
        replay(path.read_text())  # the commands only: the transcripts are test_scenarios' job
    for seed in range(28):
        c = sweep_cluster(seed)
        RandomSchedule(c, random.Random(seed)).run(200)
    assert no_redundant_messages == []


# -- forwarded proposals ---------------------------------------------------------------------------


def _log_data(net: Net, i: int) -> list[bytes]:
    store = net.stores[i]
    return [e.data for e in store.entries(store.first_index(), store.last_index() + 1)]


def test_a_forwarded_proposal_is_appended_only_in_the_term_it_was_sent() -> None:
    """A follower's ``Propose`` carries the term it was sent in (``term`` stays 0: it claims no
    term), and a leader appends it only while it leads that very term. A delayed copy reaching
    the same node after it lost and won again is refused: its sender, having applied an entry
    of a later term, may have told its caller that the proposal will never apply."""
    net = Net(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    term = net.nodes[1].term
    net.nodes[2].propose(b"late")
    net.process(2)
    (forward,) = net.take(Propose)
    assert (forward.term, forward.sent_term) == (0, term)
    net.elect(3)
    net.elect(1)  # leads again, in a later term
    assert net.nodes[1].term > term
    net.nodes[1].step(forward)
    net.deliver_all()
    assert b"late" not in _log_data(net, 1)
    # The same entries sent in the leader's current term are appended; so are those of a
    # sender of the previous version, which carry no sent term (0) and were never checked.
    net.nodes[1].step(dataclasses.replace(forward, sent_term=net.nodes[1].term))
    legacy = Propose(0, 3, 1, (Entry(0, 0, data=b"legacy"),), 0)
    net.nodes[1].step(legacy)
    net.deliver_all()
    assert _log_data(net, 1)[-2:] == [b"late", b"legacy"]
    assert [e.data for e in net.applied[2][-2:]] == [b"late", b"legacy"]


def test_a_forward_carries_only_entries_of_its_sent_term() -> None:
    """Entries a follower buffered are sent with its current term, so they must all have been
    proposed in it: a change of term before the next Ready empties the buffer (those proposals
    are lost, as if the message were), and nothing is forwarded under the later term."""
    net = Net(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    follower = net.nodes[2]
    follower.propose(b"buffered")  # buffered until the next Ready
    net.nodes[3].campaign()
    net.process(3)
    for m in net.take(RequestVote, dst=2):
        follower.step(m)  # a later term arrives first
    net.process(2)
    assert not net.take(Propose)
    net.deliver_all()
    assert net.nodes[3].role is Role.LEADER
    follower.propose(b"next")
    net.process(2)
    (forward,) = net.take(Propose)
    assert forward.sent_term == follower.term == net.nodes[3].term
    assert [e.data for e in forward.entries] == [b"next"]
    net.inflight.append(forward)
    net.deliver_all()
    assert b"buffered" not in _log_data(net, 3) and b"next" in _log_data(net, 3)
