"""``Waiters``' proposal bookkeeping: which pending proposals an applied term or an installed
snapshot settles, and how."""

import pytest
import trio

import raftkv
from raftkv._waiters import Waiters


def _outcome(waiter) -> object:
    assert waiter.done
    try:
        return trio.run(waiter.wait)
    except (raftkv.ProposalDropped, raftkv.OutcomeUnknown) as exc:
        return exc


def test_a_later_term_applied_drops_what_was_sent_before_it() -> None:
    w = Waiters(1)
    (s3, w3), (s4, w4), (s5, w5) = (w.new_proposal() for _ in range(3))
    w.proposal_sent(s3, 3)
    w.proposal_sent(s4, 4)
    w.proposal_sent(s5, 4)
    w.applied_term(3)  # its own term: it may still commit
    assert not w3.done
    w.proposal_applied(s4, "r4")
    w.applied_term(4)
    assert not w5.done  # sent in term 4: it may still commit
    assert isinstance(_outcome(w3), raftkv.ProposalDropped)
    assert str(_outcome(w3)).startswith("dropped: leader changed (sent in term 3")
    assert _outcome(w4) == "r4"
    w.applied_term(6)
    assert isinstance(_outcome(w5), raftkv.ProposalDropped)
    assert w.proposals == {}


def test_a_snapshot_leaves_the_outcome_of_what_it_may_hold_unknown() -> None:
    w = Waiters(1)
    (s2, w2), (s5, w5) = w.new_proposal(), w.new_proposal()
    w.proposal_sent(s2, 2)
    w.proposal_sent(s5, 5)
    w.snapshot_restored(4)
    outcome = _outcome(w2)
    assert isinstance(outcome, raftkv.OutcomeUnknown) and "snapshot" in str(outcome)
    assert not w5.done  # sent after the snapshot's term: not in it
    w.applied_term(5)
    assert not w5.done


def test_a_caller_that_gave_up_is_forgotten() -> None:
    w = Waiters(1)
    seq, waiter = w.new_proposal()
    w.proposal_sent(seq, 1)
    w.forget_proposal(seq)
    w.applied_term(9)
    assert not waiter.done


@pytest.mark.parametrize("never_sent", [True, False])
def test_only_proposals_handed_to_the_core_are_judged(never_sent: bool) -> None:
    w = Waiters(1)
    seq, waiter = w.new_proposal()
    if not never_sent:
        w.proposal_sent(seq, 1)
    w.applied_term(2)
    assert waiter.done is not never_sent
