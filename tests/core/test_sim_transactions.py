"""Transactions in the simulator: the state machine's command, and the history checks that
judge them end to end."""

from __future__ import annotations

import random

import pytest

from raftkv.core import Entry, EntryType
from raftkv.testing import (
    Cluster,
    LinearizabilityViolation,
    OpKind,
    RandomSchedule,
    sweep_cluster,
)
from raftkv.testing._statemachine import Applied, KVStateMachine, Txn, parse_command


def _entry(index: int, data: str) -> Entry:
    return Entry(term=1, index=index, type=EntryType.NORMAL, data=data.encode())


def test_a_transaction_parses_and_describes_itself() -> None:
    txn = parse_command(b"txn a==x b== then a=v b= else c=w get a c#retry")
    assert txn == Txn(
        compares=(("a", "x"), ("b", None)),
        success=(("a", "v"), ("b", None)),
        failure=(("c", "w"),),
        reads=("a", "c"),
    )
    assert parse_command(txn.describe().encode()) == txn


@pytest.mark.parametrize(
    "data",
    [
        "txn a==1",  # no then
        "txn a=1 then",  # a compare needs ==
        "txn then a==1",  # a write needs =
        "txn then a=1 a=2",  # a key twice in one branch
        "txn else then",  # sections out of order
        "txn then a=1 then b=2",  # a section twice
        "txn then =1",  # no key
    ],
)
def test_a_malformed_transaction_is_no_command(data: str) -> None:
    assert parse_command(data.encode()) is None
    sm = KVStateMachine()
    assert sm.apply(_entry(1, data)) is None
    assert sm.kv == {} and sm.history == []


def test_a_transaction_applies_one_branch_at_one_index() -> None:
    sm = KVStateMachine()
    sm.apply(_entry(1, "a=x"))
    data = "txn a==x then b=v a=v else c=v get a b"
    won = sm.apply(_entry(2, data))
    writes, reads = (("a", "v"), ("b", "v")), (("a", "x"), ("b", None))
    assert won == Applied(2, parse_command(data.encode()), True, writes, reads)  # type: ignore[arg-type]
    lost = sm.apply(_entry(3, "txn a==x then a=w else c=w b="))
    assert lost is not None and not lost.ok
    assert lost.writes == (("b", None), ("c", "w"))
    assert sm.kv == {"a": "v", "c": "w"}
    # One index, the keys in order: as one revision's events.
    assert sm.history == [
        (1, "a", "x"),
        (2, "a", "v"),
        (2, "b", "v"),
        (3, "b", None),
        (3, "c", "w"),
    ]
    restored = KVStateMachine.restore(sm.snapshot())
    assert (restored.kv, restored.history, restored.digest) == (sm.kv, sm.history, sm.digest)


def test_simulated_transactions_are_checked() -> None:
    # Schedules issue transactions, some answered (either branch, some with reads), and the
    # history with them passes the checks.
    answered = {True: 0, False: 0}
    reads = 0
    for seed in range(40):
        cluster = sweep_cluster(seed)
        schedule = RandomSchedule(cluster, random.Random(seed))
        schedule.run(300)
        schedule.check_liveness(50)
        cluster.check_history()
        for op in cluster.history or ():
            if op.kind is OpKind.TXN and op.ret is not None:
                answered[bool(op.ok)] += 1
                reads += bool(op.reads)
    assert answered[True] > 10 and answered[False] > 10 and reads > 10


def _ignore_compares(mp: pytest.MonkeyPatch) -> None:
    original = KVStateMachine._apply_txn

    def apply_txn(self: KVStateMachine, index: int, txn: Txn) -> Applied:
        return original(self, index, Txn((), txn.success, txn.failure, txn.reads))

    mp.setattr(KVStateMachine, "_apply_txn", apply_txn)


def _read_after_writes(mp: pytest.MonkeyPatch) -> None:
    original = KVStateMachine._apply_txn

    def apply_txn(self: KVStateMachine, index: int, txn: Txn) -> Applied:
        applied = original(self, index, txn)
        after = tuple((k, self.kv.get(k)) for k, _ in applied.reads)
        return Applied(applied.index, txn, applied.ok, applied.writes, after)

    mp.setattr(KVStateMachine, "_apply_txn", apply_txn)


@pytest.mark.parametrize("breaker", [_ignore_compares, _read_after_writes])
def test_a_broken_transaction_is_caught(monkeypatch: pytest.MonkeyPatch, breaker: object) -> None:
    breaker(monkeypatch)  # type: ignore[operator]
    c = Cluster(3, seed=0)
    c.elect(1)
    c.propose(1, b"txn ta== then ta=v1 tb=v1 else get ta tb")
    c.stabilize()
    c.propose(2, b"txn ta==nope then ta=v2 tb=v2 else tb=v2 get ta tb")
    c.stabilize()
    c.read(3, "ta")
    c.stabilize()
    with pytest.raises(LinearizabilityViolation, match="keys 'ta,tb'"):
        c.check_history()
