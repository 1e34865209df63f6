"""The leader's view of each follower (Raft §5.3, thesis §3.5) and quorum arithmetic.

A follower's ``Progress`` is in one of three states:

* PROBE: we do not know where its log matches ours; send one AppendEntries at a time
  (``probe_sent`` pauses it) and walk ``next`` back on rejections.
* REPLICATE: it matched; stream entries optimistically, at most ``max_inflight_msgs`` unacked
  messages in flight (``Inflights``).
* SNAPSHOT: it needs entries we compacted away; a snapshot is on its way, send nothing else.

Invariant: ``match < next``; ``match`` never decreases while we remain leader of this term.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from ._types import ConfState

__all__ = ["Inflights", "Progress", "ProgressState", "ProgressTracker", "ProgressView"]


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """The last indexes of AppendEntries sent but not yet acknowledged, oldest first."""

    __slots__ = ("_capacity", "_queue")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._queue: deque[int] = deque()

    def add(self, last_index: int) -> None:
        assert not self.full(), "inflights overflow"
        self._queue.append(last_index)

    def free_le(self, index: int) -> None:
        """Forget every message whose last index is <= index (acknowledged)."""
        q = self._queue
        while q and q[0] <= index:
            q.popleft()

    def free_first_one(self) -> None:
        if self._queue:
            self._queue.popleft()

    def full(self) -> bool:
        return len(self._queue) >= self._capacity

    def reset(self) -> None:
        self._queue.clear()

    def __len__(self) -> int:
        return len(self._queue)


class Progress:
    __slots__ = (
        "inflights",
        "is_learner",
        "lost_data_reported",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "state",
    )

    def __init__(self, next_index: int, max_inflight: int, *, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        # Set when the follower answered within the current election timeout (CheckQuorum).
        self.recent_active = False
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner
        self.lost_data_reported = False  # said once: its log ended below match (see Raft)

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        # After a snapshot, probe from just past it (it either landed, or the next probe says so).
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """An acknowledgement up to ``index``; False if it is stale (already known)."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def optimistic_update(self, last_index: int) -> None:
        self.next = last_index + 1

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A rejection of the probe at ``rejected``; False if it is stale (Raft §5.3)."""
        if self.state is ProgressState.REPLICATE:
            # In flight and out of order: only a rejection above match is news.
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        # Probing: only the rejection of our latest probe (next - 1) is news.
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True


@dataclass(frozen=True, slots=True)
class ProgressView:
    """A read-only copy of one follower's progress, for status and learner promotion."""

    match: int
    next: int
    state: ProgressState
    recent_active: bool
    is_learner: bool


class ProgressTracker:
    """The configuration in force and one ``Progress`` per member (self included)."""

    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self.conf = ConfState()
        self.progress: dict[int, Progress] = {}
        self._voters: tuple[int, ...] = ()
        self._quorum = 1

    def set_conf(self, conf: ConfState, next_index: int) -> None:
        """Switch configuration, keeping the progress of members that stay."""
        old = self.progress
        progress: dict[int, Progress] = {}
        for node in conf.members:
            is_learner = node in conf.learners
            pr = old.get(node)
            if pr is None:
                pr = Progress(next_index, self.max_inflight, is_learner=is_learner)
                # A new member counts as active so CheckQuorum does not fire before it answers.
                pr.recent_active = True
            pr.is_learner = is_learner
            progress[node] = pr
        self.conf = conf
        self.progress = progress
        self._voters = conf.voters
        self._quorum = len(conf.voters) // 2 + 1

    def reset(self, self_id: int, last_index: int) -> None:
        """Fresh progress for a new term: probe everyone from just past our last entry."""
        for node, pr in self.progress.items():
            fresh = Progress(last_index + 1, self.max_inflight, is_learner=pr.is_learner)
            if node == self_id:
                fresh.match = last_index
            self.progress[node] = fresh

    @property
    def voters(self) -> tuple[int, ...]:
        return self._voters

    def is_voter(self, node: int) -> bool:
        return node in self._voters

    def is_singleton(self) -> bool:
        return len(self._voters) == 1

    def has_quorum(self, nodes: set[int] | dict[int, bool]) -> bool:
        """Do ``nodes`` include a majority of the voters? (Learners never count.)"""
        return sum(1 for v in self._voters if v in nodes) >= self._quorum

    def committed(self) -> int:
        """The largest index a quorum of voters has matched (Raft §5.3, §5.4.2 is the caller's)."""
        matches = sorted((self.progress[v].match for v in self._voters), reverse=True)
        if not matches:
            return 0
        return matches[self._quorum - 1]

    def tally_votes(self, votes: dict[int, bool]) -> bool | None:
        """True if won, False if lost, None while still pending."""
        granted = sum(1 for v in self._voters if votes.get(v) is True)
        rejected = sum(1 for v in self._voters if votes.get(v) is False)
        if granted >= self._quorum:
            return True
        if rejected > len(self._voters) - self._quorum:
            return False
        return None

    def quorum_active(self, self_id: int) -> bool:
        active = {v for v in self._voters if v == self_id or self.progress[v].recent_active}
        return len(active) >= self._quorum

    def view(self) -> dict[int, ProgressView]:
        return {
            node: ProgressView(pr.match, pr.next, pr.state, pr.recent_active, pr.is_learner)
            for node, pr in sorted(self.progress.items())
        }
