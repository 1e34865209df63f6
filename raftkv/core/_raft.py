"""``Raft``: every transition rule of the protocol, in one place.

Sections cited are from Ongaro's thesis ("Consensus: Bridging Theory and Practice", 2014) and the
Raft paper (§5). The structure follows etcd-io/raft: one ``step`` entry point for remote
messages, a handler per role, and local inputs as methods.

Configuration changes take effect when they are *applied* (as in etcd), not when appended
(thesis §4.1). Applying is a local, in-order event, so the configuration in force is always
"the configuration as of the applied index", which is also exactly the configuration a snapshot
taken at that index must carry. Safety with single-server changes needs two guards, both here:
a leader appends a change only once it has committed an entry of its own term and only while no
other change is pending (not yet applied) — Ongaro, raft-dev, 2015 — and no node campaigns while
it has a committed but unapplied change. What a node does once it applied its own removal
(retire as leader, or linger) lives in ``_removal``.

Invariants (checked by ``raftkv.testing``): at most one leader per term; a leader never
overwrites its own log; ``committed`` only moves forward and only onto an entry of the current
term by counting replicas (§5.4.2).
"""

from __future__ import annotations

import logging
import random
from typing import assert_never

from ._config import Config, ReadOnlyOption
from ._errors import ConfChangeRefused, NotLeader, ProposalDropped
from ._log import RaftLog
from ._logstore import Compacted, LogStore
from ._messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from ._progress import Progress, ProgressState, ProgressTracker
from ._read_only import ReadOnly
from ._removal import RETIRE_CONTEXT, Removal
from ._types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryId,
    EntryType,
    HardState,
    ReadState,
    Role,
    Snapshot,
)

__all__ = ["Raft"]

log = logging.getLogger("raftkv.core")


class Raft:
    def __init__(self, config: Config, store: LogStore, rng: random.Random, applied: int) -> None:
        self.id = config.id
        self.config = config
        self.rng = rng
        self.log = RaftLog(store)
        hard_state, conf_state = store.initial_state()
        self.tracker = ProgressTracker(config.max_inflight_msgs)
        self.tracker.set_conf(conf_state, self.log.last_index() + 1)

        self.term = hard_state.term
        self.vote: int | None = hard_state.vote
        self.role = Role.FOLLOWER
        self.lead: int | None = None
        # Messages of the batch being built (see _send): those that may leave before the batch
        # is durable, and those that must wait until it is.
        self.msgs: list[Message] = []
        self.msgs_after_persist: list[Message] = []
        # Per peer, the Heartbeat and the empty AppendEntries already in this batch, which a
        # later one supersedes (see _supersede).
        self._batched_heartbeat: dict[tuple[int, bool], Heartbeat] = {}
        self._batched_empty_append: dict[int, AppendEntries] = {}
        self.read_states: list[ReadState] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_ticks
        self.votes: dict[int, bool] = {}
        self.lead_transferee: int | None = None
        self.pending_conf_index = 0
        # The last entry a leader appended for a follower's forwarded proposal (this term).
        self.forwarded_index = 0
        # A leader's first entry of its term (the no-op); 0 when not leading.
        self.noop_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        # ReadIndex requests a new leader holds until it has committed an entry of its term.
        self.pending_reads: list[tuple[int, bytes]] = []
        # Batching: appends and read heartbeats are sent once per Ready, not once per proposal.
        self.append_dirty = False
        self.read_heartbeat_context: bytes | None = None
        # Proposals a follower batches for its leader until the next Ready (``flush``).
        # Invariant: every entry in it was proposed in ``self.term`` (``_reset`` empties it on
        # every change of term or role), so the whole batch is sent with that term.
        self.forward_buffer: list[Entry] = []
        # Retiring, lingering or removed after applying our own removal (see _removal).
        self.removal = Removal(self)
        self._reset_randomized_election_timeout()

        if hard_state.commit:
            last = self.log.last_index()
            if not self.log.first_index() - 1 <= hard_state.commit <= last:
                raise ValueError(
                    f"hard state commit {hard_state.commit} outside the log (..{last})"
                )
            self.log.commit_to(hard_state.commit)
        # Re-apply configuration changes the state machine already applied past the snapshot.
        applied = max(applied, self.log.applied)
        if applied > self.log.committed:
            raise ValueError(f"applied {applied} beyond commit {self.log.committed}")
        for e in self.log.entries(self.log.applied + 1, applied + 1):
            if e.type is EntryType.CONF_CHANGE:
                self._apply_conf_change_entry(e)
        self.log.applied = applied
        # The hard state last made durable (the runtime advanced the Ready that carried it).
        self.stable_hard_state = HardState(self.term, self.vote, self.log.committed)

    # -- helpers ---------------------------------------------------------------------------------

    # Every message leaves through one of two helpers, which decide where it is made when it
    # may be sent (the Ready contract: ``Ready.messages`` / ``Ready.persisted_messages``).
    # Thesis §10.2.1: a message that promises nothing may travel while the sender's disk write
    # is in flight; one that promises durable state (a vote, an acknowledged entry) may not.

    def _send(self, m: Message) -> None:
        """Send once this batch is durable: the default, for everything that answers or
        promises. A granted vote or a vote request stands on a durable (term, vote); an append
        or snapshot acknowledgement on durable entries; a heartbeat acknowledgement confirms a
        leadership (ReadIndex) in a term that must be durable; a rejection's term and hint come
        from state this batch may be writing; a ReadIndex answer and a TimeoutNow gain nothing
        from leaving early, so they do not."""
        self.msgs_after_persist.append(m)

    def _send_early(self, m: Message) -> None:
        """Send at once, before this batch is durable: a leader's AppendEntries, Heartbeat and
        InstallSnapshot (from its durable store), a follower's forwarded proposals and ReadIndex
        requests. They promise nothing about the sender's log: a follower acknowledges only
        what *it* made durable, and the leader steps that answer only after this batch is
        advanced, so after its own write.

        Unless they would say more than the sender's disk backs; then they wait like any other:
        a term this batch is still making durable (a node that crashes forgets it and may take
        the term again: a second leader of one term, whose entries clash with the first one's
        at the same index and term), or a commit index beyond the leader's durable log (a lone
        voter commits its entries as it appends them; a follower told so could apply an entry
        the leader's crash then loses). Thesis §10.2.1 lets the leader write in parallel with
        its followers as long as what it tells them is backed: a commit index only once its
        own log holds it durably."""
        match m:
            case AppendEntries(commit=commit) | Heartbeat(commit=commit):
                self._supersede(m)
                backed = commit <= self.log.last_stable_index()
            case _:
                backed = True
        if backed and m.term <= self.stable_hard_state.term:
            self.msgs.append(m)
        else:
            self.msgs_after_persist.append(m)

    def _supersede(self, m: AppendEntries | Heartbeat) -> None:
        """One heartbeat and one empty append per peer and batch: a new one takes the place of
        the one already batched for that peer. Its commit index is at least as high, and a
        read context is the newest pending one, whose acknowledgement confirms every earlier
        read as well; a retiring leader's heartbeats (``RETIRE_CONTEXT``) answer another
        question, so they have their own place. An append with entries replaces a batched
        empty append too. Several ticks between two Readys, a heartbeat answer that resumes
        a probe just before a commit is announced: without this, each sends its own copy."""
        if isinstance(m, Heartbeat):
            slot = (m.dst, m.context == RETIRE_CONTEXT)
            old = self._batched_heartbeat.get(slot)
            if old is not None and old.context and not m.context:
                return  # keep the read context batched; this one is sent as well
            self._withdraw(old)
            self._batched_heartbeat[slot] = m
            return
        self._withdraw(self._batched_empty_append.pop(m.dst, None))
        if not m.entries:
            self._batched_empty_append[m.dst] = m

    def _withdraw(self, m: Message | None) -> None:
        if m is None:
            return
        for batch in (self.msgs, self.msgs_after_persist):
            for i in range(len(batch) - 1, -1, -1):
                if batch[i] is m:
                    del batch[i]
                    return

    def take_messages(self) -> tuple[tuple[Message, ...], tuple[Message, ...]]:
        """This batch's messages: (may leave at once, must wait until the batch is durable)."""
        out = (tuple(self.msgs), tuple(self.msgs_after_persist))
        self.msgs = []
        self.msgs_after_persist = []
        self._batched_heartbeat = {}
        self._batched_empty_append = {}
        return out

    def _reset_randomized_election_timeout(self) -> None:
        e = self.config.election_ticks
        self.randomized_election_timeout = e + self.rng.randrange(e)

    def promotable(self) -> bool:
        """May this node campaign? A voter; or a node lingering after its own removal, which
        may lead only to retire (see _removal); never a node that is ``removed``."""
        if self.removal.removed:
            return False
        return self.tracker.is_voter(self.id) or self.removal.may_lead_to_retire()

    def committed_entry_in_current_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    # -- role changes ----------------------------------------------------------------------------

    def _reset(self, term: int) -> None:
        self.removal.on_reset()
        if term != self.term:
            self.term = term
            self.vote = None
        self.lead = None
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self.lead_transferee = None
        self.votes = {}
        self.tracker.reset(self.id, self.log.last_index())
        self.pending_conf_index = 0
        self.forwarded_index = 0
        self.noop_index = 0
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        self.pending_reads = []
        self.append_dirty = False
        self.read_heartbeat_context = None
        self.forward_buffer = []

    def become_follower(self, term: int, lead: int | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.lead = lead
        log.debug("%d became follower at term %d (leader %s)", self.id, term, lead)

    def _become_pre_candidate(self) -> None:
        # A pre-candidate changes neither term nor vote (thesis §9.6): a failed poll costs nothing.
        assert self.role is not Role.LEADER, "a leader cannot become pre-candidate"
        self.votes = {}
        self.role = Role.PRE_CANDIDATE
        self.lead = None

    def _become_candidate(self) -> None:
        assert self.role is not Role.LEADER, "a leader cannot become candidate"
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        assert self.role is not Role.FOLLOWER, "a follower must campaign first"
        self._reset(self.term)
        self.role = Role.LEADER
        self.lead = self.id
        own = self.tracker.progress.get(self.id)
        if own is not None:
            own.become_replicate()
        self.removal.on_elected()
        # Conservatively treat everything up to our last entry as possibly holding a conf change:
        # no change is accepted before the no-op below is applied (§4.1 + the 2015 fix).
        self.pending_conf_index = self.log.last_index()
        # The no-op entry commits everything before it once it commits (§5.4.2, §8).
        self.noop_index = self._append_entries([Entry(self.term, self.log.last_index() + 1)]).index
        log.debug("%d became leader at term %d", self.id, self.term)

    # -- local inputs ----------------------------------------------------------------------------

    def tick(self) -> None:
        if self.role is Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.config.election_ticks:
            self.election_elapsed = 0
            if self.config.check_quorum and not self.removal.retiring_at:
                # CheckQuorum (thesis §6.2): a leader cut off from a quorum steps down.
                if not self.tracker.quorum_active(self.id):
                    log.debug("%d stepped down: no quorum active", self.id)
                    self.become_follower(self.term, None)
                    return
                for node, pr in self.tracker.progress.items():
                    if node != self.id:
                        pr.recent_active = False
            if self.lead_transferee is not None:
                # A transfer must finish within an election timeout (thesis §3.10).
                self.lead_transferee = None
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks:
            self.heartbeat_elapsed = 0
            if self.removal.retiring_at:
                self.removal.heartbeat()
            else:
                self._bcast_heartbeat(self.read_only.last_pending_context() or b"")

    def hup(self, *, transfer: bool) -> None:
        """Start an election (or a pre-vote poll) if this node may."""
        if self.role is Role.LEADER:
            return
        if not self.promotable():
            log.debug("%d cannot campaign: not a voter", self.id)
            return
        if self.log.pending_snapshot is not None or self.log.unapplied_conf_change():
            # Our configuration may be about to change (thesis §4.1): wait until it is applied.
            log.debug("%d cannot campaign: a committed conf change is not applied yet", self.id)
            return
        if self.config.pre_vote and not transfer:
            self._campaign(pre_vote=True, transfer=False)
        else:
            self._campaign(pre_vote=False, transfer=transfer)

    def _campaign(self, *, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._become_pre_candidate()
            vote_term = self.term + 1
        else:
            self._become_candidate()
            vote_term = self.term
        self.votes[self.id] = True
        result = self.tracker.tally_votes(self.votes)
        if result:
            # A single voter wins at once.
            if pre_vote:
                self._campaign(pre_vote=False, transfer=transfer)
            else:
                self._become_leader()
            return
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for node in self.tracker.voters:
            if node != self.id:
                self._send(
                    RequestVote(vote_term, self.id, node, last_index, last_term, pre_vote, transfer)
                )

    def propose(self, data: bytes) -> EntryId | None:
        if self.removal.leaving:
            raise ProposalDropped("this node was removed from the cluster")
        if self.role is Role.LEADER:
            entry = self._leader_append_proposal([Entry(0, 0, EntryType.NORMAL, data)])
            return entry.id
        if self.lead is None or self.role is not Role.FOLLOWER:
            raise NotLeader(None, "proposals")
        if not self.config.forward_proposals:
            raise NotLeader(self.lead, "proposals")
        self.forward_buffer.append(Entry(0, 0, EntryType.NORMAL, data))
        return None

    def _leader_append_proposal(self, entries: list[Entry]) -> Entry:
        if self.removal.retiring_at:
            raise ProposalDropped("the leader is leaving the cluster")
        if self.lead_transferee is not None:
            raise ProposalDropped(f"leadership transfer to {self.lead_transferee} in progress")
        size = sum(len(e.data) for e in entries)
        limit = self.config.max_uncommitted_entries_size
        if limit and self.uncommitted_size and self.uncommitted_size + size > limit:
            raise ProposalDropped("too many uncommitted bytes; the cluster is overloaded")
        self.uncommitted_size += size
        return self._append_entries(entries)

    def _append_entries(self, entries: list[Entry]) -> Entry:
        """Leader: give entries their term and index, append them, schedule replication."""
        last = self.log.last_index()
        term = self.term
        stamped = [Entry(term, last + i, e.type, e.data) for i, e in enumerate(entries, 1)]
        self.log.append(stamped)
        # Our own match counts once the Ready that persists these is handled: we only send after
        # persisting, so no follower can ack an entry we have not made durable (Ready contract).
        own = self.tracker.progress.get(self.id)
        if own is not None:  # a retiring leader is not a member and does not count itself
            own.maybe_update(stamped[-1].index)
        self.append_dirty = True
        self._maybe_commit()
        return stamped[-1]

    def propose_conf_change(self, change: ConfChange) -> EntryId:
        if self.removal.leaving:
            raise ProposalDropped("this node was removed from the cluster")
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead, "membership changes")
        if not self.committed_entry_in_current_term():
            raise ConfChangeRefused("the new leader has not committed an entry of its term yet")
        if self.pending_conf_index > self.log.applied:
            raise ConfChangeRefused("another membership change is still in progress")
        conf = self.tracker.conf
        if change.type is ConfChangeType.REMOVE_NODE:
            if not conf.contains(change.node_id):
                raise ConfChangeRefused(f"node {change.node_id} is not a member")
            if conf.voters == (change.node_id,):
                raise ConfChangeRefused("cannot remove the last voter")
        elif change.type is ConfChangeType.ADD_LEARNER and change.node_id in conf.voters:
            raise ConfChangeRefused(f"node {change.node_id} is already a voter")
        entry = self._leader_append_proposal([Entry(0, 0, EntryType.CONF_CHANGE, change.encode())])
        self.pending_conf_index = entry.index
        return entry.id

    def read_index(self, context: bytes) -> None:
        if self.removal.leaving:
            raise ProposalDropped("this node was removed from the cluster")
        if self.role is Role.LEADER:
            self._leader_read_index(self.id, context)
        elif self.role is Role.FOLLOWER and self.lead is not None:
            self._send_early(ReadIndexRequest(self.term, self.id, self.lead, context))
        else:
            raise NotLeader(None, "reads")

    def _leader_read_index(self, requester: int, context: bytes) -> None:
        if not self.committed_entry_in_current_term():
            # Our commit index may be stale until our no-op commits (thesis §6.4 step 1).
            self.pending_reads.append((requester, context))
            return
        index = self.log.committed
        if self.tracker.is_singleton() or self.config.read_only is ReadOnlyOption.LEASE_BASED:
            # Lease: CheckQuorum guarantees we heard from a quorum within an election timeout.
            self._release_read(requester, index, context)
            return
        self.read_only.add_request(index, context, requester)
        self.read_only.recv_ack(self.id, context)
        self.read_heartbeat_context = context

    def _release_read(self, requester: int, index: int, context: bytes) -> None:
        if requester == self.id:
            self.read_states.append(ReadState(index, context))
            return
        if not self.config.broadcast_commit:
            # The follower must apply up to ``index`` to serve the read; it may hold those
            # entries without having been told they committed. Say so just before answering.
            self._send_append(requester)
        self._send(ReadIndexResponse(self.term, self.id, requester, index, context))

    def _release_pending_reads(self) -> None:
        pending, self.pending_reads = self.pending_reads, []
        for requester, context in pending:
            self._leader_read_index(requester, context)

    def transfer_leadership(self, to: int) -> None:
        if self.removal.retiring_at:
            raise ProposalDropped("this node is leaving the cluster and hands over by itself")
        if self.role is not Role.LEADER:
            raise NotLeader(self.lead, "leadership transfer")
        if to == self.id:
            self.lead_transferee = None
            return
        if not self.tracker.is_voter(to):
            raise ProposalDropped(f"node {to} is not a voter")
        if self.lead_transferee == to:
            return
        self.lead_transferee = to
        self.election_elapsed = 0  # the transfer must finish within an election timeout
        if self.tracker.progress[to].match == self.log.last_index():
            self.send_timeout_now(to)
        else:
            self._send_append(to)

    def report_unreachable(self, peer: int) -> None:
        if self.role is not Role.LEADER:
            return
        pr = self.tracker.progress.get(peer)
        if pr is not None and pr.state is ProgressState.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, peer: int, ok: bool) -> None:
        if self.role is not Role.LEADER:
            return
        pr = self.tracker.progress.get(peer)
        if pr is None or pr.state is not ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        # Wait for the follower's answer (a heartbeat response resumes us) before probing again.
        pr.probe_sent = True

    # -- remote input ----------------------------------------------------------------------------

    def step(self, m: Message) -> None:
        if m.term == 0:
            match m:
                case Propose():
                    self._step_propose(m)
                case _:
                    log.debug("%d dropped a term-0 %s", self.id, type(m).__name__)
            return
        if m.term > self.term:
            if not self._step_higher_term(m):
                return
        elif m.term < self.term:
            self._step_stale(m)
            return
        if isinstance(m, RequestVote):
            self._handle_vote(m)
        elif self.role is Role.LEADER:
            self._step_leader(m)
        elif self.role is Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _step_higher_term(self, m: Message) -> bool:
        """A message from a later term (§5.1): adopt the term, unless the message is a vote we
        refuse to let through. Returns whether ``m`` still needs handling in the new term."""
        match m:
            case RequestVote(transfer=False) if self._in_leader_lease():
                # We heard from a live leader recently: do not let anyone depose it (§4.2.3).
                log.debug("%d ignored a vote from %d: leader lease", self.id, m.src)
                return False
            case RequestVote(pre_vote=True):
                self._handle_vote(m)  # a poll never changes our term
                return False
            case RequestVoteResponse(pre_vote=True, reject=False):
                pass  # a granted poll carries the future term; our term moves when we campaign
            case AppendEntries() | Heartbeat() | InstallSnapshot():
                self.become_follower(m.term, m.src)
            case _:
                self.become_follower(m.term, None)
        return True

    def _in_leader_lease(self) -> bool:
        return (
            self.config.check_quorum
            and self.lead is not None
            and self.election_elapsed < self.config.election_ticks
        )

    def _step_stale(self, m: Message) -> None:
        match m:
            case AppendEntries() | Heartbeat() if self.config.check_quorum or self.config.pre_vote:
                # A deposed leader that can no longer win an election (we ignore its votes while
                # in lease, and pre-votes keep our term) would never learn our term: tell it.
                self._send(AppendEntriesResponse(self.term, self.id, m.src, 0))
            case RequestVote(pre_vote=True):
                self._send(RequestVoteResponse(self.term, self.id, m.src, True, True))
            case _:
                log.debug("%d ignored a stale %s from %d", self.id, type(m).__name__, m.src)

    def _handle_vote(self, m: RequestVote) -> None:
        can_vote = (
            self.vote == m.src
            or (self.vote is None and self.lead is None)
            or (m.pre_vote and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.last_index, m.last_term):
            # Granted: the response carries the candidate's term so a pre-candidate counts it.
            self._send(RequestVoteResponse(m.term, self.id, m.src, False, m.pre_vote))
            if not m.pre_vote:
                self.election_elapsed = 0
                self.vote = m.src
        else:
            self._send(RequestVoteResponse(self.term, self.id, m.src, True, m.pre_vote))

    def _step_propose(self, m: Propose) -> None:
        if self.role is Role.LEADER:
            if m.sent_term and m.sent_term != self.term:
                # Sent to the leader of another term (perhaps to us, before we lost and won
                # again): its sender may already have told its caller that it will never apply.
                log.debug(
                    "%d (leader, term %d) dropped proposals %d sent in term %d",
                    self.id,
                    self.term,
                    m.src,
                    m.sent_term,
                )
                return
            # Only local callers may change membership; forwarded entries are plain commands.
            entries = [e for e in m.entries if e.type is EntryType.NORMAL]
            if not entries:
                return
            try:
                self.forwarded_index = self._leader_append_proposal(entries).index
            except ProposalDropped as exc:
                log.debug("%d dropped proposals forwarded by %d: %s", self.id, m.src, exc)
        elif self.role is Role.FOLLOWER and self.lead is not None and self.lead != m.src:
            log.debug("%d dropped proposals from %d: not the leader", self.id, m.src)

    def _step_leader(self, m: Message) -> None:
        pr = self.tracker.progress.get(m.src)
        match m:
            case AppendEntriesResponse():
                if pr is not None:
                    pr.recent_active = True
                    self._handle_append_response(m, pr)
            case HeartbeatResponse():
                if pr is not None:
                    self._handle_heartbeat_response(m, pr)
            case ReadIndexRequest():
                if pr is not None:
                    self._leader_read_index(m.src, m.context)
            case (
                AppendEntries()
                | Heartbeat()
                | InstallSnapshot()
                | RequestVote()
                | RequestVoteResponse()
                | TimeoutNow()
                | ReadIndexResponse()
                | Propose()
            ):
                log.debug("%d (leader) ignored %s from %d", self.id, type(m).__name__, m.src)
            case _:
                assert_never(m)

    def _handle_heartbeat_response(self, m: HeartbeatResponse, pr: Progress) -> None:
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state is ProgressState.REPLICATE and pr.inflights.full():
            # The appends that filled the window may all have been lost: let one more go
            # (etcd does the same), or the follower would never hear from us again.
            pr.inflights.free_first_one()
        if pr.match < self.log.last_index():
            self._send_append(m.src)
        if m.context == RETIRE_CONTEXT:
            self.removal.on_ack(m.src)
        elif m.context:
            self._handle_read_ack(m.src, m.context)

    def _handle_read_ack(self, node: int, context: bytes) -> None:
        if self.config.read_only is not ReadOnlyOption.SAFE:
            return
        acks = self.read_only.recv_ack(node, context)
        if acks is None or not self.tracker.has_quorum(acks):
            return
        for status in self.read_only.advance(context):
            self._release_read(status.requester, status.index, status.context)

    def _handle_append_response(self, m: AppendEntriesResponse, pr: Progress) -> None:
        if m.reject:
            if m.hint_index < pr.match and not pr.lost_data_reported:
                # Its log matched ours up to match, which no append truncates: it lost entries
                # it had made durable (a wiped data directory, a broken disk). Raft cannot heal
                # that in place: it stays behind, as in etcd, until an operator replaces it.
                pr.lost_data_reported = True
                log.warning(
                    "%d: node %d lost entries it had acknowledged (its log ends at %d, below %d):"
                    " remove it and add a new member with an empty data directory",
                    self.id,
                    m.src,
                    m.hint_index,
                    pr.match,
                )
            # Fast backtracking: skip to where our log has a term <= the follower's hint term.
            next_probe = m.hint_index
            if m.hint_term > 0:
                next_probe, _ = self.log.find_conflict_by_term(m.hint_index, m.hint_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.src)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        elif pr.state is ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        committed = self.log.committed
        if self._maybe_commit() and self._announce_commit(committed):
            self.append_dirty = True  # tell everyone the new commit index
        elif old_paused:
            self._send_append(m.src)
        # Keep the pipeline full.
        while self._maybe_send_append(m.src, send_if_empty=False):
            pass
        if m.src == self.lead_transferee and pr.match == self.log.last_index():
            self.send_timeout_now(m.src)

    def _step_candidate(self, m: Message) -> None:
        match m:
            case AppendEntries() | Heartbeat() | InstallSnapshot():
                # Someone won this term (§5.2).
                self.become_follower(m.term, m.src)
                self._step_follower(m)
            case RequestVoteResponse():
                self._handle_vote_response(m)
            case (
                AppendEntriesResponse()
                | HeartbeatResponse()
                | RequestVote()
                | TimeoutNow()
                | ReadIndexRequest()
                | ReadIndexResponse()
                | Propose()
            ):
                log.debug("%d (%s) ignored %s", self.id, self.role.value, type(m).__name__)
            case _:
                assert_never(m)

    def _handle_vote_response(self, m: RequestVoteResponse) -> None:
        if m.pre_vote != (self.role is Role.PRE_CANDIDATE):
            return
        self.votes.setdefault(m.src, not m.reject)
        result = self.tracker.tally_votes(self.votes)
        if result is True:
            if self.role is Role.PRE_CANDIDATE:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
        elif result is False:
            self.become_follower(self.term, None)

    def _step_follower(self, m: Message) -> None:
        match m:
            case AppendEntries():
                self.election_elapsed = 0
                self.lead = m.src
                self._handle_append(m)
            case Heartbeat():
                self.election_elapsed = 0
                self.lead = m.src
                if m.commit <= self.log.last_index():
                    self.log.commit_to(m.commit)
                self._send(HeartbeatResponse(self.term, self.id, m.src, m.context))
            case InstallSnapshot():
                self.election_elapsed = 0
                self.lead = m.src
                self._handle_snapshot(m)
            case TimeoutNow():
                self._handle_timeout_now(m)
            case ReadIndexResponse():
                if not m.reject:
                    self.read_states.append(ReadState(m.index, m.context))
            case (
                AppendEntriesResponse()
                | HeartbeatResponse()
                | RequestVote()
                | RequestVoteResponse()
                | ReadIndexRequest()
                | Propose()
            ):
                log.debug("%d (follower) ignored %s from %d", self.id, type(m).__name__, m.src)
            case _:
                assert_never(m)

    def _handle_timeout_now(self, m: TimeoutNow) -> None:
        log.debug("%d campaigns at once: leadership transfer from %d", self.id, m.src)
        self.election_elapsed = 0
        self.lead = m.src
        # Learn what the old leader committed: a removed leader's last word may be the
        # only way we hear that its removal committed (then we campaign once applied).
        if m.commit <= self.log.last_index():
            self.log.commit_to(m.commit)
        self.hup(transfer=True)

    def _handle_append(self, m: AppendEntries) -> None:
        if m.prev_index < self.log.committed:
            self._send(AppendEntriesResponse(self.term, self.id, m.src, self.log.committed))
            return
        last_new = self.log.maybe_append(m.prev_index, m.prev_term, m.commit, m.entries)
        if last_new is not None:
            self._send(AppendEntriesResponse(self.term, self.id, m.src, last_new))
            return
        hint_index, hint_term = self.log.find_conflict_by_term(m.prev_index, m.prev_term)
        self._send(
            AppendEntriesResponse(
                self.term, self.id, m.src, m.prev_index, True, hint_index, hint_term
            )
        )

    def _handle_snapshot(self, m: InstallSnapshot) -> None:
        meta = m.snapshot.metadata
        if self._restore(m.snapshot):
            self._send(AppendEntriesResponse(self.term, self.id, m.src, self.log.last_index()))
        else:
            log.debug("%d ignored snapshot at %d", self.id, meta.index)
            self._send(AppendEntriesResponse(self.term, self.id, m.src, self.log.committed))

    def _restore(self, snapshot: Snapshot) -> bool:
        meta = snapshot.metadata
        if meta.index <= self.log.committed:
            return False
        # The configuration is the one in force at the snapshot's index. It may not name us yet:
        # a member added after that index learns of its own addition from the entries that
        # follow (refusing such a snapshot strands new members: etcd#13741).
        if self.log.match_term(meta.index, meta.term):
            # We already hold that entry: just fast-forward the commit index.
            self.log.commit_to(meta.index)
            return False
        # The snapshot's configuration takes effect when the snapshot is applied (applied_to),
        # like any configuration change: conf_state is always the one as of the applied index.
        self.log.restore(snapshot)
        return True

    # -- leader replication ----------------------------------------------------------------------

    def _send_append(self, to: int) -> None:
        self._maybe_send_append(to, send_if_empty=True)

    def _maybe_send_append(self, to: int, *, send_if_empty: bool) -> bool:
        pr = self.tracker.progress.get(to)
        if pr is None or pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        try:
            entries = self.log.entries(
                pr.next, self.log.last_index() + 1, self.config.max_size_per_msg
            )
        except Compacted:
            entries = None
        if prev_term is None or entries is None:
            return self._send_snapshot(to)
        if not entries and not send_if_empty:
            return False
        self._send_early(
            AppendEntries(
                self.term, self.id, to, prev_index, prev_term, tuple(entries), self.log.committed
            )
        )
        if entries:
            last = entries[-1].index
            if pr.state is ProgressState.REPLICATE:
                pr.optimistic_update(last)
                pr.inflights.add(last)
            else:
                pr.probe_sent = True
        elif pr.state is ProgressState.PROBE:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int) -> bool:
        pr = self.tracker.progress[to]
        if not pr.recent_active:
            log.debug("%d holds back a snapshot for %d: not recently active", self.id, to)
            return False
        snapshot = self.log.store.snapshot()
        assert not snapshot.is_empty, "entries were compacted without a snapshot"
        pr.become_snapshot(snapshot.metadata.index)
        self._send_early(InstallSnapshot(self.term, self.id, to, snapshot))
        return True

    def bcast_append(self) -> None:
        for node in sorted(self.tracker.progress):
            if node != self.id:
                self._maybe_send_append(node, send_if_empty=True)

    def _announce_commit(self, previous: int) -> bool:
        """Whether the commit index that just moved past ``previous`` goes out at once."""
        if self.config.broadcast_commit:
            return True
        # Someone waits on the followers for these entries (a forwarded proposal's client, every
        # member for a membership change or a new leader's no-op, which tells a follower that
        # what it forwarded in an earlier term will never apply): tell them now.
        return (
            self.forwarded_index > previous
            or self.pending_conf_index > previous
            or self.noop_index > previous
        )

    def _commit_for(self, node: int) -> int:
        """Our commit index, capped at what ``node`` is known to hold (it must not commit
        entries it lacks)."""
        return min(self.tracker.progress[node].match, self.log.committed)

    def _bcast_heartbeat(self, context: bytes) -> None:
        for node in sorted(self.tracker.progress):
            if node != self.id:
                self.send_heartbeat(node, context)

    def send_heartbeat(self, to: int, context: bytes) -> None:
        self._send_early(Heartbeat(self.term, self.id, to, self._commit_for(to), context))

    def send_timeout_now(self, to: int) -> None:
        self._send(TimeoutNow(self.term, self.id, to, self._commit_for(to)))

    def _maybe_commit(self) -> bool:
        index = self.tracker.committed()
        # Only an entry of our own term commits by counting replicas (§5.4.2, Figure 8).
        if index > self.log.committed and self.log.term(index) == self.term:
            self.log.commit_to(index)
            if self.pending_reads:
                self._release_pending_reads()
            return True
        return False

    def flush(self) -> None:
        """Send what was batched since the last Ready: appends, read heartbeats, forwards."""
        if self.role is Role.LEADER:
            if self.append_dirty:
                self.append_dirty = False
                self.bcast_append()
            if self.read_heartbeat_context is not None:
                self._bcast_heartbeat(self.read_heartbeat_context)
                self.read_heartbeat_context = None
        elif self.forward_buffer:
            if self.lead is not None and self.role is Role.FOLLOWER:
                entries = tuple(self.forward_buffer)
                self._send_early(Propose(0, self.id, self.lead, entries, self.term))
            self.forward_buffer = []

    # -- applying --------------------------------------------------------------------------------

    def applied_to(self, entries: tuple[Entry, ...], snapshot: Snapshot | None) -> None:
        """The runtime restored ``snapshot`` (if any), then applied ``entries``."""
        if snapshot is not None:
            self.log.applied = max(self.log.applied, snapshot.metadata.index)
            self._apply_conf(snapshot.metadata.conf_state, snapshot.metadata.index)
        if not entries:
            return
        size = 0
        for e in entries:
            if e.type is EntryType.CONF_CHANGE:
                self._apply_conf_change_entry(e)
            size += len(e.data)
        self.log.applied = entries[-1].index
        if self.role is Role.LEADER:
            self.uncommitted_size = max(0, self.uncommitted_size - size)

    def _apply_conf_change_entry(self, e: Entry) -> None:
        try:
            change = ConfChange.decode(e.data)
            conf = self.tracker.conf.apply(change)
        except ValueError as exc:
            # Deterministic on every replica: the same bytes are ignored everywhere.
            log.warning("%d ignored an invalid conf change at %d: %s", self.id, e.index, exc)
            return
        self._apply_conf(conf, e.index)

    def _apply_conf(self, conf: ConfState, index: int) -> None:
        was_member = self.tracker.conf.contains(self.id)
        self.tracker.set_conf(conf, self.log.last_index() + 1)
        if was_member and not conf.contains(self.id):
            self.removal.on_applied(index)
            return
        if self.role is not Role.LEADER:
            return
        if self.lead_transferee is not None and not conf.contains(self.lead_transferee):
            self.lead_transferee = None
        if not self.tracker.is_voter(self.id):
            return
        # A smaller quorum may commit more; new members need entries.
        self._maybe_commit()
        self.append_dirty = True
