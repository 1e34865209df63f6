"""The simulator catches deliberately broken cores.

Each test breaks one rule of the core with ``monkeypatch`` (by replacing one internal function
of ``raftkv.core._raft`` / ``_log`` / ``_rawnode`` / ``_progress``) and shows that a scenario
that is harmless for the real core now fails with the right violation. A second test shows the
seeded random schedules find the same bugs without being told where to look.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from raftkv.core import Entry, InstallSnapshot, RawNode, ReadOnlyOption, Ready, RequestVoteResponse
from raftkv.core._log import RaftLog
from raftkv.core._progress import ProgressTracker
from raftkv.core._raft import Raft
from raftkv.testing import (
    InvariantViolation,
    LinearizabilityViolation,
    RandomSchedule,
    StaleRead,
    run_scenario,
    sweep_cluster,
)

TESTDATA = Path(__file__).resolve().parent.parent / "testdata"


# -- the broken variants ---------------------------------------------------------------------------


def commit_previous_term_by_counting(mp: pytest.MonkeyPatch) -> None:
    """Commit whatever a quorum holds, even an entry of an earlier term (Figure 8's bug)."""

    def _maybe_commit(self: Raft) -> bool:
        index = self.tracker.committed()
        if index > self.log.committed:
            self.log.commit_to(index)
            if self.pending_reads:
                self._release_pending_reads()
            return True
        return False

    mp.setattr(Raft, "_maybe_commit", _maybe_commit)


def grant_vote_to_stale_log(mp: pytest.MonkeyPatch) -> None:
    """Ignore the election restriction (§5.4.1): every candidate's log is 'up to date'."""
    mp.setattr(RaftLog, "is_up_to_date", lambda self, last_index, last_term: True)


def send_vote_before_persisting(mp: pytest.MonkeyPatch) -> None:
    """Hand out a granted vote in a Ready whose hard state does not yet record it."""
    original = RawNode.ready

    def ready(self: RawNode) -> Ready:
        rd = original(self)
        grants = any(
            isinstance(m, RequestVoteResponse) and not m.reject and not m.pre_vote
            for m in rd.messages + rd.persisted_messages
        )
        if grants and rd.hard_state is not None:
            rd = dataclasses.replace(rd, hard_state=None)
            self._outstanding = rd
        return rd

    mp.setattr(RawNode, "ready", ready)


def forget_the_vote(mp: pytest.MonkeyPatch) -> None:
    """Grant votes without recording them (so the node may vote twice in a term)."""
    original = Raft._handle_vote

    def _handle_vote(self: Raft, m: object) -> None:
        vote = self.vote
        original(self, m)  # type: ignore[arg-type]
        self.vote = vote

    mp.setattr(Raft, "_handle_vote", _handle_vote)


def keep_conflicting_suffix(mp: pytest.MonkeyPatch) -> None:
    """Accept an append without truncating the entries that conflict with it."""

    def maybe_append(
        self: RaftLog, prev_index: int, prev_term: int, committed: int, entries: tuple[Entry, ...]
    ) -> int | None:
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        if self.find_conflict(entries):
            new = [e for e in entries if e.index > self.last_index()]
            if new:
                self.append(new)
        self.commit_to(min(committed, last_new, self.last_index()))
        return last_new

    mp.setattr(RaftLog, "maybe_append", maybe_append)


def read_index_without_heartbeat(mp: pytest.MonkeyPatch) -> None:
    """Release a ReadIndex at once, without confirming leadership with a heartbeat round."""

    def _leader_read_index(self: Raft, requester: int, context: bytes) -> None:
        if not self.committed_entry_in_current_term():
            self.pending_reads.append((requester, context))
            return
        self._release_read(requester, self.log.committed, context)

    mp.setattr(Raft, "_leader_read_index", _leader_read_index)


def second_conf_change_while_pending(mp: pytest.MonkeyPatch) -> None:
    """Accept a configuration change while another one is still pending."""
    original = Raft.propose_conf_change

    def propose_conf_change(self: Raft, change: object) -> object:
        self.pending_conf_index = 0
        return original(self, change)  # type: ignore[arg-type]

    mp.setattr(Raft, "propose_conf_change", propose_conf_change)


def snapshot_with_current_configuration(mp: pytest.MonkeyPatch) -> None:
    """Send a snapshot carrying the leader's current configuration, not the one at its index."""
    original = Raft._send_snapshot

    def _send_snapshot(self: Raft, to: int) -> bool:
        sent = original(self, to)
        m = self.msgs[-1] if self.msgs else None
        if sent and isinstance(m, InstallSnapshot):
            meta = dataclasses.replace(m.snapshot.metadata, conf_state=self.tracker.conf)
            snap = dataclasses.replace(m.snapshot, metadata=meta)
            self.msgs[-1] = dataclasses.replace(m, snapshot=snap)
        return sent

    mp.setattr(Raft, "_send_snapshot", _send_snapshot)


def learners_count_toward_quorum(mp: pytest.MonkeyPatch) -> None:
    """Count every member's match, learners included, when computing the commit index."""

    def committed(self: ProgressTracker) -> int:
        matches = sorted((pr.match for pr in self.progress.values()), reverse=True)
        return matches[self._quorum - 1] if matches else 0

    mp.setattr(ProgressTracker, "committed", committed)


Breaker = Callable[[pytest.MonkeyPatch], None]

# (breaker, scenario file that exposes it, what must be reported)
TARGETED: list[tuple[Breaker, str, tuple[type[BaseException], ...], str | None]] = [
    (commit_previous_term_by_counting, "figure8", (InvariantViolation,), "commit by counting"),
    (grant_vote_to_stale_log, "vote_rejects_stale_log", (InvariantViolation,), "Completeness"),
    (send_vote_before_persisting, "election_three_nodes", (InvariantViolation,), "before persist"),
    (forget_the_vote, "split_vote", (InvariantViolation,), "no ack before persist"),
    (keep_conflicting_suffix, "conflicting_follower_truncation", (InvariantViolation,), None),
    (
        read_index_without_heartbeat,
        "deposed_leader_stale_read",
        (LinearizabilityViolation, StaleRead),
        None,
    ),
    (
        second_conf_change_while_pending,
        "single_server_change_add_add",
        (InvariantViolation,),
        "at most one uncommitted configuration change",
    ),
    (
        snapshot_with_current_configuration,
        "snapshot_new_member",
        (InvariantViolation,),
        "configuration at its index",
    ),
    (
        learners_count_toward_quorum,
        "learner_no_quorum",
        (InvariantViolation,),
        "quorum of voters",
    ),
]


@pytest.mark.parametrize(
    ("breaker", "scenario", "errors", "message"),
    TARGETED,
    ids=[t[0].__name__ for t in TARGETED],
)
def test_scenario_catches_broken_core(
    monkeypatch: pytest.MonkeyPatch,
    breaker: Breaker,
    scenario: str,
    errors: tuple[type[BaseException], ...],
    message: str | None,
) -> None:
    path = TESTDATA / f"{scenario}.txt"
    run_scenario(path, rewrite=False)  # the real core passes
    breaker(monkeypatch)
    with pytest.raises(errors, match=message):
        run_scenario(path, rewrite=False)


# The random schedules find these on their own, within a bounded number of seeds.
SWEEP = [
    commit_previous_term_by_counting,
    grant_vote_to_stale_log,
    send_vote_before_persisting,
    forget_the_vote,
    keep_conflicting_suffix,
    read_index_without_heartbeat,
    second_conf_change_while_pending,
    snapshot_with_current_configuration,
    learners_count_toward_quorum,
]


def _first_failing_seed(limit: int) -> int | None:
    for seed in range(limit):
        cluster = sweep_cluster(seed)
        try:
            RandomSchedule(cluster, random.Random(seed)).run(300)
            config = cluster.node_config(1)
            cluster.check_liveness(10 if config.pre_vote else 50)
            if config.read_only is ReadOnlyOption.SAFE:
                cluster.check_history()
        except AssertionError:
            return seed
    return None


@pytest.mark.parametrize("breaker", SWEEP, ids=[b.__name__ for b in SWEEP])
def test_random_schedules_catch_broken_core(
    monkeypatch: pytest.MonkeyPatch, breaker: Breaker
) -> None:
    breaker(monkeypatch)
    assert _first_failing_seed(1500) is not None
