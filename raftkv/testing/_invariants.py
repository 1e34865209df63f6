"""Raft's safety properties, checked by the simulator after every step.

``InvariantChecker`` watches every node of a ``Cluster`` through hooks the simulator calls while
it handles Readys (before and after persisting, on each message sent, on each entry applied) and
once per simulator step. Most checks are incremental, so they stay cheap over long runs:

* Election Safety: at most one leader per term, ever (a history of leaders by term is kept).
* Leader Append-Only: a leader never truncates nor replaces its own log within its term.
* Log Matching: every (index, term) ever made durable anywhere has one predecessor term and one
  payload. By induction this is exactly "same (index, term) => identical prefixes".
* Leader Completeness: a leader of term T holds every entry known committed before term T.
* State Machine Safety: one entry (and one state-machine digest) per applied index, everywhere;
  no node commits two different entries at one index.
* Durable state never regresses: term and commit never decrease, the vote of a term never changes,
  also across crashes (the durable store is compared, not memory).
* Commitment: when a leader's commit index moves to ``c``, entry ``c`` is durable on a quorum of
  the VOTERS of its configuration (learners never count), and is an entry of the leader's own
  term (§5.4.2: earlier entries are committed only indirectly, Figure 8).
* Membership: a leader's log holds at most one uncommitted configuration change, and it appends
  one only after it has committed an entry of its own term; a node's configuration is the one
  derived from the log up to its applied index; a snapshot carries the configuration derived
  from the log up to its index.
* No acknowledgement before persistence: a granted vote leaving a node is backed by a durable
  (term, vote); a successful append response by durable entries; no message carries a term the
  sender has not made durable.

Violations raise ``InvariantViolation`` (an ``AssertionError``) naming the property.
"""

from __future__ import annotations

import bisect

from raftkv.core import (
    AppendEntriesResponse,
    Compacted,
    ConfChange,
    ConfState,
    Entry,
    EntryId,
    EntryType,
    InstallSnapshot,
    MemoryLogStore,
    Message,
    Propose,
    RawNode,
    Ready,
    RequestVote,
    RequestVoteResponse,
    Role,
    Snapshot,
    Unavailable,
)

__all__ = ["InvariantChecker", "InvariantViolation"]


class InvariantViolation(AssertionError):
    """A Raft safety property does not hold; ``prop`` names it."""

    def __init__(self, prop: str, detail: str) -> None:
        super().__init__(f"{prop} violated: {detail}")
        self.prop = prop
        self.detail = detail


def _term_in(store: MemoryLogStore, index: int) -> int | None:
    """The durable term at ``index``: None if beyond the store or compacted away."""
    snap = store.snapshot().metadata
    if index == snap.index:
        return snap.term
    try:
        return store.term(index)
    except (Compacted, Unavailable):
        return None


def _holds(store: MemoryLogStore, index: int, term: int) -> bool:
    """Is entry (index, term) durable in ``store`` (in its log, or covered by its snapshot)?"""
    if index <= store.snapshot().metadata.index:
        return True  # a snapshot only ever covers committed entries
    return index <= store.last_index() and store.term(index) == term


class InvariantChecker:
    """Global knowledge gathered across nodes and time; see the module docstring."""

    def __init__(self) -> None:
        # Election Safety: term -> the node that led it.
        self.leaders: dict[int, int] = {}
        # Per node: the term in which it was a leader at its previous Ready (0: not leader).
        self._leader_term: dict[int, int] = {}
        # Per node: the largest term/commit seen in memory in this incarnation.
        self._mem_term: dict[int, int] = {}
        self._mem_commit: dict[int, int] = {}
        # Per node: the commit index its durable store had after its previous Ready.
        self._durable_commit: dict[int, int] = {}
        # Log Matching: (index, term) -> (previous entry's term, payload digest).
        self._entries: dict[tuple[int, int], tuple[int, int, bytes]] = {}
        # Committed entries: index -> term, and the smallest term in which it was seen committed.
        self.committed: dict[int, int] = {}
        self._committed_in: dict[int, int] = {}
        # Applied entries: index -> entry id and the state machine's digest after it.
        self._applied: list[EntryId] = [EntryId(0, 0)]
        self._digests: list[int] = [0]
        # Configuration history derived from the applied log: (index, configuration).
        self._conf_index: list[int] = [0]
        self._conf: list[ConfState] = [ConfState()]
        self.checks = 0
        # Every node's durable store, by id (``attach``): for the quorum checks.
        self._stores: dict[int, MemoryLogStore] = {}

    # -- helpers -----------------------------------------------------------------------------------

    def conf_at(self, index: int) -> ConfState:
        """The configuration derived from the log up to ``index`` (it must be applied somewhere)."""
        pos = bisect.bisect_right(self._conf_index, index) - 1
        return self._conf[pos]

    @property
    def applied_index(self) -> int:
        """The highest index any node applied."""
        return len(self._applied) - 1

    # -- node lifecycle ----------------------------------------------------------------------------

    def on_start(self, node_id: int, store: MemoryLogStore, raw: RawNode) -> None:
        """A node (re)started from ``store``: its memory must continue from the durable state."""
        hs = store.hard_state
        prev = self._durable_commit.get(node_id, 0)
        if hs.commit < prev:
            raise InvariantViolation(
                "durable state never regresses",
                f"node {node_id} restarts with commit {hs.commit} < {prev} made durable before",
            )
        if raw.term != hs.term or raw.commit < hs.commit:
            raise InvariantViolation(
                "restart from the log store",
                f"node {node_id} restarted at term {raw.term} commit {raw.commit}, "
                f"its store says term {hs.term} commit {hs.commit}",
            )
        self._durable_commit[node_id] = hs.commit
        self._leader_term[node_id] = 0
        self._mem_term[node_id] = raw.term
        self._mem_commit[node_id] = raw.commit
        self.on_store_written(node_id, store)

    def reset_node(self, node_id: int, store: MemoryLogStore) -> None:
        """A down node's store was replaced wholesale (scenario setup, ``set-log``)."""
        self._durable_commit[node_id] = store.hard_state.commit
        self._leader_term[node_id] = 0
        self._mem_term.pop(node_id, None)
        self._mem_commit.pop(node_id, None)
        self.on_store_written(node_id, store)

    def on_snapshot_created(self, node_id: int, snapshot: Snapshot, digest: int) -> None:
        """The simulator took a snapshot of ``node_id``'s state machine."""
        self._check_snapshot(node_id, snapshot, "created")
        self.on_restore(node_id, snapshot, digest)

    def on_store_written(self, node_id: int, store: MemoryLogStore) -> None:
        """The simulator wrote ``store`` directly (scenario setup): learn its entries."""
        first, last = store.first_index(), store.last_index()
        if last >= first:
            prev = _term_in(store, first - 1) or 0
            for e in store.entries(first, last + 1):
                self._record_entry(node_id, e, prev)
                prev = e.term

    # -- per step ----------------------------------------------------------------------------------

    def check_node(self, node_id: int, raw: RawNode) -> None:
        """Cheap checks of one live node's memory, after every simulator step."""
        self.checks += 1
        _never_decreases("term", self._mem_term, node_id, raw.term)
        _never_decreases("commit", self._mem_commit, node_id, raw.commit)
        if raw.role is Role.LEADER:
            self._note_leader(node_id, raw.term)

    def _note_leader(self, node_id: int, term: int) -> None:
        other = self.leaders.setdefault(term, node_id)
        if other != node_id:
            raise InvariantViolation(
                "Election Safety", f"nodes {other} and {node_id} are both leaders of term {term}"
            )

    # -- Ready handling ----------------------------------------------------------------------------

    def before_persist(self, node_id: int, store: MemoryLogStore, raw: RawNode, rd: Ready) -> None:
        """Called with ``rd`` in hand, before the simulator writes it to ``store``."""
        old = store.hard_state
        hs = rd.hard_state
        if hs is not None:
            if hs.term < old.term:
                raise InvariantViolation(
                    "term never decreases",
                    f"node {node_id} persists term {hs.term} over {old.term}",
                )
            if hs.commit < old.commit:
                raise InvariantViolation(
                    "commit never decreases",
                    f"node {node_id} persists commit {hs.commit} over {old.commit}",
                )
            if hs.term == old.term and old.vote is not None and hs.vote != old.vote:
                raise InvariantViolation(
                    "one vote per term",
                    f"node {node_id} changes its vote in term {hs.term} "
                    f"from {old.vote} to {hs.vote}",
                )
        entries = rd.entries
        if entries and entries[0].index <= old.commit:
            raise InvariantViolation(
                "committed entries are never overwritten",
                f"node {node_id} rewrites index {entries[0].index} <= its commit {old.commit}",
            )
        lt = self._leader_term.get(node_id, 0)
        if lt and raw.role is Role.LEADER and raw.term == lt:
            if entries and entries[0].index <= store.last_index():
                raise InvariantViolation(
                    "Leader Append-Only",
                    f"leader {node_id} (term {lt}) overwrites its log from {entries[0].index} "
                    f"(last {store.last_index()})",
                )
            if rd.snapshot is not None:
                raise InvariantViolation(
                    "Leader Append-Only", f"leader {node_id} (term {lt}) installs a snapshot"
                )
        if rd.snapshot is not None:
            self._check_snapshot(node_id, rd.snapshot, "installed")

    def after_persist(self, node_id: int, store: MemoryLogStore, raw: RawNode, rd: Ready) -> None:
        """Called once ``rd``'s snapshot, entries and hard state are in ``store``."""
        if rd.snapshot is not None:
            meta = rd.snapshot.metadata
            self._record_commit(node_id, meta.index, meta.term, store.hard_state.term)
        if rd.entries:
            first = rd.entries[0].index
            prev = _term_in(store, first - 1)
            if prev is None:
                raise AssertionError(f"node {node_id}: entries at {first} follow a hole")
            for e in rd.entries:
                self._record_entry(node_id, e, prev)
                prev = e.term
        # Commitment as made durable.
        hs = store.hard_state
        old_commit = self._durable_commit.get(node_id, 0)
        if hs.commit > old_commit:
            snap_index = store.snapshot().metadata.index
            for i in range(max(old_commit + 1, snap_index), hs.commit + 1):
                term = _term_in(store, i)
                if term is None:
                    raise InvariantViolation(
                        "commit within the log",
                        f"node {node_id} commits {hs.commit} beyond its durable log "
                        f"({store.last_index()})",
                    )
                self._record_commit(node_id, i, term, hs.term)
            self._durable_commit[node_id] = hs.commit
        is_leader = raw.role is Role.LEADER
        if is_leader:
            term = raw.term
            self._note_leader(node_id, term)
            was_leader = self._leader_term.get(node_id, 0) == term
            if not was_leader:
                self._leader_term[node_id] = term
                self._check_leader_completeness(node_id, store, term)
            if hs.commit > old_commit:
                if was_leader and _term_in(store, hs.commit) != term:
                    # Raft §5.4.2 / Figure 8: only an entry of the leader's own term is committed
                    # by counting replicas. (Skipped at the first Ready of a leadership: the
                    # commit may have been learned as a follower just before.)
                    raise InvariantViolation(
                        "commit by counting only in the leader's term",
                        f"leader {node_id} of term {term} moved its commit index to "
                        f"{hs.commit}, an entry of term {_term_in(store, hs.commit)}",
                    )
                self._check_quorum_durable(node_id, raw, hs.commit)
            if any(e.type is EntryType.CONF_CHANGE for e in rd.entries):
                self._check_conf_changes(node_id, store, term)
        else:
            self._leader_term[node_id] = 0

    def on_send(self, node_id: int, store: MemoryLogStore, msg: Message) -> None:
        """A message leaves ``node_id``; everything it promises must already be durable."""
        hs = store.hard_state
        # Pre-votes carry the term their sender would campaign in; Propose carries none.
        poll = isinstance(msg, (RequestVote, RequestVoteResponse)) and msg.pre_vote
        if msg.term > hs.term and not poll and not isinstance(msg, Propose):
            raise InvariantViolation(
                "no ack before persist",
                f"node {node_id} sends a term-{msg.term} {type(msg).__name__} before term "
                f"{msg.term} is durable (durable term {hs.term})",
            )
        # Within one Ready a node may answer in term T and then move on to a later term; what
        # it promised in term T is then moot. Promises of the durable term must be durable.
        if msg.term != hs.term:
            if isinstance(msg, InstallSnapshot):
                self._check_snapshot(node_id, msg.snapshot, f"sent to {msg.dst}")
            return
        if isinstance(msg, RequestVoteResponse):
            if not msg.pre_vote and not msg.reject and hs.vote != msg.dst:
                raise InvariantViolation(
                    "no ack before persist",
                    f"node {node_id} grants its term-{msg.term} vote to {msg.dst} but its durable "
                    f"vote in that term is {hs.vote}",
                )
        elif isinstance(msg, RequestVote):
            if not msg.pre_vote and hs.vote != node_id:
                raise InvariantViolation(
                    "no ack before persist",
                    f"candidate {node_id} asks for term-{msg.term} votes but its durable vote in "
                    f"that term is {hs.vote}",
                )
        elif isinstance(msg, AppendEntriesResponse):
            if not msg.reject and msg.index > store.last_index():
                raise InvariantViolation(
                    "no ack before persist",
                    f"node {node_id} acknowledges index {msg.index} but holds only up to "
                    f"{store.last_index()} durably",
                )
        elif isinstance(msg, InstallSnapshot):
            self._check_snapshot(node_id, msg.snapshot, f"sent to {msg.dst}")

    def on_apply(self, node_id: int, entry: Entry, digest: int) -> None:
        """``node_id``'s state machine applied ``entry``; its digest is now ``digest``."""
        index = entry.index
        applied = self._applied
        if index < len(applied):
            if applied[index] != entry.id:
                raise InvariantViolation(
                    "State Machine Safety",
                    f"node {node_id} applies {entry.id} at index {index}, another node applied "
                    f"{applied[index]}",
                )
            if self._digests[index] != digest:
                raise InvariantViolation(
                    "State Machine Safety",
                    f"node {node_id}'s state machine differs after index {index}",
                )
            return
        if index != len(applied):
            raise AssertionError(f"node {node_id} applies {index}, no node applied {index - 1}")
        applied.append(entry.id)
        self._digests.append(digest)
        if entry.type is EntryType.CONF_CHANGE:
            conf = self._conf[-1]
            try:
                conf = conf.apply(ConfChange.decode(entry.data))
            except ValueError:
                return  # the core ignores an invalid change; so does the history
            self._conf_index.append(index)
            self._conf.append(conf)

    def on_restore(self, node_id: int, snapshot: Snapshot, digest: int) -> None:
        """``node_id``'s state machine was restored from ``snapshot``."""
        index = snapshot.metadata.index
        if index < len(self._digests) and self._digests[index] != digest:
            raise InvariantViolation(
                "State Machine Safety",
                f"node {node_id} restored a snapshot at {index} whose state differs from "
                "the state of the nodes that applied the log up to there",
            )

    def after_advance(self, node_id: int, raw: RawNode) -> None:
        """Configuration in force == the one derived from the log up to the applied index."""
        applied = raw.applied
        if applied > self.applied_index:
            return
        want = self.conf_at(applied)
        if raw.conf_state != want:
            raise InvariantViolation(
                "configuration = log up to applied",
                f"node {node_id} at applied {applied} uses {raw.conf_state}, the log says {want}",
            )

    # -- the checks --------------------------------------------------------------------------------

    def _record_entry(self, node_id: int, e: Entry, prev_term: int) -> None:
        key = (e.index, e.term)
        value = (prev_term, int(e.type), e.data)
        old = self._entries.setdefault(key, value)
        if old is not value and old != value:
            raise InvariantViolation(
                "Log Matching",
                f"node {node_id} holds entry {e.term}/{e.index} after term {prev_term} with "
                f"data {e.data[:40]!r}; elsewhere it follows term {old[0]} with data "
                f"{old[2][:40]!r}",
            )

    def _record_commit(self, node_id: int, index: int, term: int, in_term: int) -> None:
        old = self.committed.setdefault(index, term)
        if old != term:
            raise InvariantViolation(
                "State Machine Safety",
                f"node {node_id} commits {term}/{index}; {old}/{index} was committed before",
            )
        if in_term < self._committed_in.get(index, in_term + 1):
            self._committed_in[index] = in_term

    def _check_leader_completeness(self, node_id: int, store: MemoryLogStore, term: int) -> None:
        for index, committed_in in self._committed_in.items():
            if committed_in >= term:
                continue
            want = self.committed[index]
            if not _holds(store, index, want):
                raise InvariantViolation(
                    "Leader Completeness",
                    f"leader {node_id} of term {term} lacks entry {want}/{index}, committed "
                    f"by term {committed_in}",
                )

    def _check_quorum_durable(self, node_id: int, raw: RawNode, commit: int) -> None:
        term = self.committed.get(commit)
        if term is None:
            return  # covered by a snapshot
        voters = raw.conf_state.voters
        stores = self._stores
        holders = [v for v in voters if v in stores and _holds(stores[v], commit, term)]
        if 2 * len(holders) <= len(voters):
            raise InvariantViolation(
                "committed entries are durable on a quorum of voters",
                f"leader {node_id} commits {term}/{commit}, but only {holders} of the voters "
                f"{list(voters)} hold it durably",
            )

    def _check_conf_changes(self, node_id: int, store: MemoryLogStore, term: int) -> None:
        commit = store.hard_state.commit
        lo = max(commit + 1, store.first_index())
        pending = [
            e for e in store.entries(lo, store.last_index() + 1) if e.type is EntryType.CONF_CHANGE
        ]
        if len(pending) > 1:
            raise InvariantViolation(
                "at most one uncommitted configuration change",
                f"leader {node_id}'s log holds uncommitted changes at "
                f"{[e.index for e in pending]} (commit {commit})",
            )
        if pending and pending[0].term == term and _term_in(store, commit) != term:
            raise InvariantViolation(
                "no configuration change before a commit in the leader's term",
                f"leader {node_id} of term {term} appended a change at {pending[0].index} "
                f"with commit {commit} from an earlier term",
            )

    def _check_snapshot(self, node_id: int, snapshot: Snapshot, what: str) -> None:
        meta = snapshot.metadata
        term = self.committed.get(meta.index)
        if term is not None and term != meta.term:
            raise InvariantViolation(
                "snapshots hold committed state",
                f"snapshot {what} by node {node_id} ends at {meta.term}/{meta.index}, but "
                f"{term}/{meta.index} is committed",
            )
        if meta.index <= self.applied_index:
            want = self.conf_at(meta.index)
            if meta.conf_state != want:
                raise InvariantViolation(
                    "a snapshot carries the configuration at its index",
                    f"snapshot {what} by node {node_id} at {meta.index} carries "
                    f"{meta.conf_state}, the log says {want}",
                )

    def attach(self, stores: dict[int, MemoryLogStore]) -> None:
        """Let the checker see every node's durable store (for quorum checks)."""
        self._stores = stores


def _never_decreases(name: str, seen: dict[int, int], node_id: int, value: int) -> None:
    """Record ``value`` as node ``node_id``'s latest ``name``; it may not be below the last."""
    if value < seen.get(node_id, 0):
        raise InvariantViolation(
            f"{name} never decreases",
            f"node {node_id} went back from {name} {seen[node_id]} to {value}",
        )
    seen[node_id] = value
