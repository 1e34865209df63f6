"""The lock workload's judge (``check_locks``) on histories whose verdict is known."""

from __future__ import annotations

import pytest

from raftkv.core import Entry
from raftkv.testing import ClientOp, CommittedLog, LockViolation, OpKind, check_locks
from raftkv.testing._statemachine import KVStateMachine


def _committed(commands: dict[int, str]) -> CommittedLog:
    """The committed log of ``commands`` by index (the others: empty entries)."""
    sm, log = KVStateMachine(), CommittedLog()
    for index in range(1, max(commands) + 1):
        entry = Entry(1, index, data=commands.get(index, "").encode())
        log.record(entry, sm.apply(entry))
    return log


def _lock_op(
    i: int, holder: str, invoke: int, ret: int, index: int, *, release: bool = False
) -> ClientOp:
    value, expected = (None, holder) if release else (holder, None)
    return ClientOp(i, OpKind.CAS, 1, "lock", value, invoke, ret, index, expected=expected, ok=True)


# Client 1 holds the lock at token 63 and releases it at 66; then it takes it again at 74.
LOG = {63: "lock=c1.1?", 66: "lock=?c1.1#1", 74: "lock=c1.2?", 80: "lock=?c1.2#1"}


def test_an_acquire_learned_from_the_log_counts_when_its_client_learned_it() -> None:
    # The node the first acquire went to lagged: its client learned from the committed log
    # that it holds the lock (at 20), held and released it, and took it again (answered at
    # 50); the lagging node answered the first acquire only at 100. (Found by the Hypothesis
    # state machine as "token 63 of #1 after 74".)
    first = _lock_op(1, "c1.1", 10, 100, 63)
    first.settled = 20
    ops = [
        first,
        _lock_op(2, "c1.1", 25, 30, 66, release=True),
        _lock_op(3, "c1.2", 40, 50, 74),
        _lock_op(4, "c1.2", 55, 60, 80, release=True),
    ]
    assert check_locks(ops, _committed(LOG)) == 2


def test_an_older_token_told_after_a_newer_one_is_caught() -> None:
    # The same answers, but nobody learned anything early: told 74 at 50, then 63 at 100.
    ops = [
        _lock_op(1, "c1.1", 10, 100, 63),
        _lock_op(2, "c1.1", 25, 30, 66, release=True),
        _lock_op(3, "c1.2", 40, 50, 74),
        _lock_op(4, "c1.2", 55, 60, 80, release=True),
    ]
    with pytest.raises(LockViolation, match="token 63 of #1 after 74"):
        check_locks(ops, _committed(LOG))


def test_a_holder_told_before_the_previous_one_asked_to_release_is_caught() -> None:
    first = _lock_op(1, "c1.1", 10, 100, 63)
    first.settled = 20
    ops = [
        first,
        _lock_op(2, "c1.1", 45, 47, 66, release=True),  # asked to release only at 45
        _lock_op(3, "c1.2", 40, 44, 74),
        _lock_op(4, "c1.2", 55, 60, 80, release=True),
    ]
    with pytest.raises(LockViolation, match=r"before c1\.1 asked to release it"):
        check_locks(ops, _committed(LOG))
