"""The linearizability checker on histories with multi-key transactions."""

from __future__ import annotations

import random

import pytest

from raftkv.testing import (
    LinearizabilityViolation,
    Op,
    OpKind,
    StaleRead,
    check_linearizable,
    check_stale_reads,
)

W, R, TXN = OpKind.WRITE, OpKind.READ, OpKind.TXN
Pairs = tuple[tuple[str, str | None], ...]


def w(
    i: int, key: str, v: str | None, invoke: int, ret: int | None, *, index: int | None = None
) -> Op:
    return Op(i, W, key, v, invoke, ret, index)


def r(i: int, key: str, v: str | None, invoke: int, ret: int | None) -> Op:
    return Op(i, R, key, v, invoke, ret)


def txn(
    i: int,
    invoke: int,
    ret: int | None,
    *,
    ok: bool | None,
    compares: Pairs = (),
    success: Pairs = (),
    failure: Pairs = (),
    reads: Pairs = (),
    index: int | None = None,
) -> Op:
    key = min(k for k, _ in compares + success + failure + reads)
    return Op(
        i,
        TXN,
        key,
        None,
        invoke,
        ret,
        index,
        ok=ok,
        compares=compares,
        success=success,
        failure=failure,
        reads=reads,
    )


BOTH_A = (("x", "a"), ("y", "a"))

LINEARIZABLE = {
    "a transaction writes both keys at once": [
        txn(1, 0, 1, ok=True, compares=(("x", None),), success=BOTH_A),
        r(2, "x", "a", 2, 3),
        r(3, "y", "a", 4, 5),
    ],
    "a failed transaction takes its other branch": [
        w(1, "x", "b", 0, 1),
        txn(2, 2, 3, ok=False, compares=(("x", None),), success=BOTH_A, failure=(("y", "c"),)),
        r(3, "y", "c", 4, 5),
        r(4, "x", "b", 6, 7),
    ],
    "an unanswered transaction seen through one key took effect on both": [
        txn(1, 0, None, ok=None, success=BOTH_A),
        r(2, "x", "a", 5, 6),
        r(3, "y", "a", 7, 8),
    ],
    "an unanswered transaction may take either branch": [
        w(1, "x", "b", 0, 1),
        txn(2, 2, None, ok=None, compares=(("x", "z"),), success=BOTH_A, failure=(("y", "c"),)),
        r(3, "y", "c", 4, 5),
    ],
    "a transaction reads the registers before its writes": [
        w(1, "x", "a", 0, 1),
        txn(2, 2, 3, ok=True, success=(("x", "b"),), reads=(("x", "a"), ("y", None))),
        r(3, "x", "b", 4, 5),
    ],
    "concurrent transactions in either order": [
        txn(1, 0, 10, ok=True, compares=(("x", None),), success=BOTH_A),
        txn(2, 0, 10, ok=False, compares=(("x", None),), success=(("x", "b"), ("y", "b"))),
        r(3, "y", "a", 11, 12),
    ],
}

NOT_LINEARIZABLE = {
    "a torn transaction": [
        txn(1, 0, 1, ok=True, success=BOTH_A),
        r(2, "x", "a", 2, 3),
        r(3, "y", None, 4, 5),
    ],
    "an unanswered transaction half applied": [
        txn(1, 0, None, ok=None, success=BOTH_A),
        r(2, "x", "a", 5, 6),
        r(3, "y", None, 7, 8),
    ],
    "a transaction succeeded whose compare could not hold": [
        w(1, "x", "a", 0, 1),
        txn(2, 2, 3, ok=True, compares=(("x", "b"),), success=(("y", "c"),)),
    ],
    "a transaction failed whose compare held": [
        txn(1, 0, 1, ok=False, compares=(("x", None),), success=(("y", "c"),)),
    ],
    "a transaction read a state that never was": [
        w(1, "x", "a", 0, 1),
        w(2, "y", "b", 2, 3),
        txn(3, 4, 5, ok=True, reads=(("x", None), ("y", "b"))),
    ],
    "two transactions both won the same compare": [
        txn(1, 0, 10, ok=True, compares=(("x", None),), success=BOTH_A),
        txn(2, 0, 10, ok=True, compares=(("x", None),), success=(("x", "b"), ("y", "b"))),
    ],
}


@pytest.mark.parametrize("name", sorted(LINEARIZABLE))
def test_linearizable_histories_pass(name: str) -> None:
    check_linearizable(LINEARIZABLE[name])


@pytest.mark.parametrize("name", sorted(NOT_LINEARIZABLE))
def test_non_linearizable_histories_fail(name: str) -> None:
    with pytest.raises(LinearizabilityViolation) as info:
        check_linearizable(NOT_LINEARIZABLE[name])
    assert info.value.key == "x,y"


def test_keys_no_transaction_ties_are_checked_apart() -> None:
    ops = [
        txn(1, 0, 1, ok=True, success=BOTH_A),
        w(2, "z", "b", 2, 3),
        r(3, "z", None, 4, 5),  # stale: only z's own history decides it
        r(4, "y", "a", 4, 5),
    ]
    with pytest.raises(LinearizabilityViolation) as info:
        check_linearizable(ops)
    assert info.value.key == "z"


def test_stale_read_check_dates_transaction_writes() -> None:
    won = txn(2, 2, 3, ok=True, success=BOTH_A, failure=(("y", "c"),), index=6)
    check_stale_reads([w(1, "y", "b", 0, 1, index=5), won, r(3, "y", "a", 4, 5)])
    with pytest.raises(StaleRead, match="acknowledged before the read began"):
        check_stale_reads([w(1, "y", "b", 0, 1, index=5), won, r(3, "y", "b", 4, 5)])
    lost = txn(2, 2, 3, ok=False, success=BOTH_A, failure=(("z", "c"),), index=6)
    check_stale_reads([w(1, "y", "b", 0, 1, index=5), lost, r(3, "y", "b", 4, 5)])


def test_transactions_need_an_outcome_once_answered() -> None:
    with pytest.raises(ValueError, match="outcome"):
        txn(1, 0, 1, ok=None, success=BOTH_A)
    with pytest.raises(ValueError, match="reads without an answer"):
        txn(1, 0, None, ok=None, reads=(("x", None),))


KEYS = ("x", "y", "z")


def _model_history(rng: random.Random, n: int) -> list[Op]:
    """A history of three registers produced by a real (sequential) store, with overlapping
    client intervals: writes, reads and transactions over random subsets of the keys."""
    state: dict[str, str | None] = dict.fromkeys(KEYS)
    ops: list[Op] = []
    t = 0
    for i in range(n):
        invoke, ret = t - rng.randrange(3), t + rng.randrange(3)
        t += 2
        roll = rng.random()
        if roll < 0.3:
            key = rng.choice(KEYS)
            state[key] = f"v{i}"
            ops.append(w(i, key, f"v{i}", invoke, ret))
        elif roll < 0.5:
            key = rng.choice(KEYS)
            ops.append(r(i, key, state[key], invoke, ret))
        else:
            ops.append(_model_txn(rng, i, invoke, ret, state))
    return ops


def _model_txn(
    rng: random.Random, i: int, invoke: int, ret: int, state: dict[str, str | None]
) -> Op:
    def some() -> list[str]:
        return rng.sample(KEYS, rng.randint(1, 2))

    compares = tuple((k, state[k] if rng.random() < 0.7 else "nope") for k in some())
    success = tuple((k, f"v{i}") for k in some())
    failure = tuple((k, f"v{i}") for k in some()) if rng.random() < 0.5 else ()
    reads = tuple((k, state[k]) for k in some()) if rng.random() < 0.5 else ()
    held = all(state[k] == v for k, v in compares)
    state.update(success if held else failure)
    return txn(
        i,
        invoke,
        ret,
        ok=held,
        compares=compares,
        success=success,
        failure=failure,
        reads=reads,
    )


def test_histories_of_a_real_store_are_linearizable() -> None:
    rng = random.Random(5)
    for _ in range(100):
        check_linearizable(_model_history(rng, 30))


def test_a_torn_transaction_in_a_real_history_is_caught() -> None:
    # Drop one key's write from an acknowledged transaction that a later read observes.
    rng = random.Random(9)
    caught = 0
    for _ in range(200):
        ops = _model_history(rng, 30)
        for p, op in enumerate(ops):
            taken = op.success if op.ok else op.failure
            if op.kind is not TXN or len(taken) < 2:
                continue
            readers = [
                q
                for q in ops[p + 1 :]
                if q.kind is R and (q.key, q.value) == taken[1] and q.invoke > op.ret + 3  # type: ignore[operator]
            ]
            if not readers:
                continue
            torn = Op(
                op.id, TXN, op.key, None, op.invoke, op.ret, ok=op.ok, compares=op.compares,
                success=taken[:1] if op.ok else op.success,
                failure=op.failure if op.ok else taken[:1],
                reads=op.reads,
            )  # fmt: skip
            with pytest.raises(LinearizabilityViolation):
                check_linearizable([*ops[:p], torn, *ops[p + 1 :]])
            caught += 1
            break
    assert caught > 20
