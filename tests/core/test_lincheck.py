"""The linearizability checker, on histories whose verdict is known."""

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
    find_linearization,
)

W, R, CAS = OpKind.WRITE, OpKind.READ, OpKind.CAS


def w(
    i: int, v: str, invoke: int, ret: int | None, *, key: str = "x", index: int | None = None
) -> Op:
    return Op(i, W, key, v, invoke, ret, index)


def r(i: int, v: str | None, invoke: int, ret: int | None, *, key: str = "x") -> Op:
    return Op(i, R, key, v, invoke, ret)


def cas(
    i: int, expected: str | None, v: str | None, invoke: int, ret: int | None, *, ok: bool | None
) -> Op:
    return Op(i, CAS, "x", v, invoke, ret, None, expected, ok)


LINEARIZABLE = {
    "empty": [],
    "sequential": [w(1, "a", 0, 1), r(2, "a", 2, 3), w(3, "b", 4, 5), r(4, "b", 6, 7)],
    "read of the initial value": [r(1, None, 0, 1), w(2, "a", 2, 3)],
    "concurrent read sees old value": [w(1, "a", 0, 1), w(2, "b", 2, 6), r(3, "a", 3, 4)],
    "concurrent read sees new value": [w(1, "a", 0, 1), w(2, "b", 2, 6), r(3, "b", 3, 4)],
    "concurrent writes, reads agree on an order": [
        w(1, "a", 0, 10),
        w(2, "b", 0, 10),
        r(3, "a", 11, 12),
        r(4, "a", 13, 14),
    ],
    "maybe-write observed": [w(1, "a", 0, None), r(2, "a", 5, 6)],
    "maybe-write never observed": [w(1, "a", 0, 1), w(2, "b", 2, None), r(3, "a", 5, 6)],
    "maybe-write takes effect late": [
        w(1, "a", 0, 1),
        w(2, "b", 2, None),
        r(3, "a", 5, 6),
        r(4, "b", 7, 8),
    ],
    "unanswered read is ignored": [w(1, "a", 0, 1), r(2, "zzz", 2, None)],
    "independent keys": [
        w(1, "a", 0, 1, key="x"),
        w(2, "b", 0, 1, key="y"),
        r(3, "a", 2, 3, key="x"),
        r(4, "b", 2, 3, key="y"),
    ],
    "read overlapping two writes": [
        w(1, "a", 0, 3),
        w(2, "b", 1, 4),
        r(3, "a", 2, 5),
        r(4, "b", 6, 7),
    ],
    "compare-and-set succeeds on the value it expects": [
        w(1, "a", 0, 1),
        cas(2, "a", "b", 2, 3, ok=True),
        r(3, "b", 4, 5),
    ],
    "compare-and-set fails on another value": [
        w(1, "a", 0, 1),
        cas(2, "z", "b", 2, 3, ok=False),
        r(3, "a", 4, 5),
    ],
    "compare-and-set from empty, then back to empty": [
        cas(1, None, "a", 0, 1, ok=True),
        cas(2, "a", None, 2, 3, ok=True),
        r(3, None, 4, 5),
    ],
    "two concurrent acquires, one wins": [
        cas(1, None, "a", 0, 5, ok=True),
        cas(2, None, "b", 0, 5, ok=False),
        r(3, "a", 6, 7),
    ],
    "unanswered compare-and-set takes effect": [
        w(1, "a", 0, 1),
        cas(2, "a", "b", 2, None, ok=None),
        r(3, "b", 4, 5),
    ],
    "failed compare-and-set saw a maybe-write": [
        w(1, "a", 0, 1),
        w(2, "b", 2, None),
        cas(3, "a", "c", 4, 5, ok=False),
    ],
}

NOT_LINEARIZABLE = {
    "stale read after acked write": [w(1, "a", 0, 1), w(2, "b", 2, 3), r(3, "a", 4, 5)],
    "read of a value never written": [w(1, "a", 0, 1), r(2, "b", 2, 3)],
    "read before the write began": [r(1, "a", 0, 1), w(2, "a", 2, 3)],
    "reads disagree on order": [
        w(1, "a", 0, 10),
        w(2, "b", 0, 10),
        r(3, "a", 11, 12),
        r(4, "b", 13, 14),
        r(5, "a", 15, 16),
    ],
    "value goes back in time": [
        w(1, "a", 0, 1),
        w(2, "b", 2, 10),
        r(3, "b", 3, 4),
        r(4, "a", 5, 6),
    ],
    "initial value after a write": [w(1, "a", 0, 1), r(2, None, 2, 3)],
    "maybe-write seen then unseen": [
        w(1, "a", 0, 1),
        w(2, "b", 2, None),
        r(3, "b", 5, 6),
        r(4, "a", 7, 8),
    ],
    "compare-and-set succeeds on another value": [
        w(1, "a", 0, 1),
        cas(2, "z", "b", 2, 3, ok=True),
    ],
    "compare-and-set fails on the value it expects": [
        w(1, "a", 0, 1),
        cas(2, "a", "b", 2, 3, ok=False),
    ],
    "two concurrent acquires both win": [
        cas(1, None, "a", 0, 5, ok=True),
        cas(2, None, "b", 0, 5, ok=True),
    ],
    "unanswered compare-and-set on another value is read": [
        w(1, "a", 0, 1),
        cas(2, "z", "b", 2, None, ok=None),
        r(3, "b", 4, 5),
    ],
}


@pytest.mark.parametrize("name", sorted(LINEARIZABLE))
def test_linearizable_histories_pass(name: str) -> None:
    check_linearizable(LINEARIZABLE[name])


@pytest.mark.parametrize("name", sorted(NOT_LINEARIZABLE))
def test_non_linearizable_histories_fail(name: str) -> None:
    with pytest.raises(LinearizabilityViolation) as info:
        check_linearizable(NOT_LINEARIZABLE[name])
    assert info.value.key == "x"


def test_linearization_respects_real_time() -> None:
    ops = [w(1, "a", 0, 1), w(2, "b", 2, 3), r(3, "b", 4, 5)]
    order = find_linearization(ops)
    assert order is not None
    assert [op.id for op in order] == [1, 2, 3]


def test_maybe_write_left_out_when_not_needed() -> None:
    ops = [w(1, "a", 0, 1), w(2, "b", 2, None), r(3, "a", 5, 6)]
    order = find_linearization(ops)
    assert order is not None and [op.id for op in order] == [1, 3]


def test_op_returning_before_invocation_is_refused() -> None:
    with pytest.raises(ValueError, match="returns"):
        w(1, "a", 5, 4)


def _sequential_history(rng: random.Random, n: int) -> list[Op]:
    """A history generated by a real register with overlapping client intervals."""
    ops: list[Op] = []
    value: str | None = None
    t = 0
    for i in range(n):
        # The op takes effect at time t; its interval spans a little around it.
        invoke = t - rng.randrange(3)
        ret = t + rng.randrange(3)
        t += 2
        if rng.random() < 0.5:
            value = f"v{i}"
            ops.append(w(i, value, invoke, ret))
        else:
            ops.append(r(i, value, invoke, ret))
    return ops


def test_histories_from_a_real_register_are_linearizable() -> None:
    rng = random.Random(7)
    for _ in range(200):
        check_linearizable(_sequential_history(rng, 30))


def test_a_corrupted_read_is_caught() -> None:
    rng = random.Random(11)
    caught = 0
    for _ in range(100):
        ops = _sequential_history(rng, 30)
        reads = [i for i, op in enumerate(ops) if op.kind is R and op.value is not None]
        writes = [op.value for op in ops if op.kind is W]
        if not reads or len(writes) < 3:
            continue
        i = reads[-1]
        # Return the very first value, long overwritten: never linearizable here.
        old = ops[i]
        if old.value == writes[0] or ops.index(next(o for o in ops if o.value == writes[1])) > i:
            continue
        ops[i] = Op(old.id, R, old.key, writes[0], old.invoke + 10_000, old.ret + 10_000)  # type: ignore[operator]
        with pytest.raises(LinearizabilityViolation):
            check_linearizable(ops)
        caught += 1
    assert caught > 20


def test_stale_read_check() -> None:
    ok = [w(1, "a", 0, 1, index=5), w(2, "b", 2, 3, index=6), r(3, "b", 4, 5)]
    check_stale_reads(ok)
    concurrent = [w(1, "a", 0, 1, index=5), w(2, "b", 2, 9, index=6), r(3, "a", 4, 5)]
    check_stale_reads(concurrent)
    stale = [w(1, "a", 0, 1, index=5), w(2, "b", 2, 3, index=6), r(3, "a", 4, 5)]
    with pytest.raises(StaleRead, match="acknowledged before the read began"):
        check_stale_reads(stale)
    initial = [w(1, "a", 0, 1, index=5), r(2, None, 4, 5)]
    with pytest.raises(StaleRead):
        check_stale_reads(initial)


def test_compare_and_set_needs_an_outcome_once_answered() -> None:
    with pytest.raises(ValueError, match="outcome"):
        cas(1, "a", "b", 0, 1, ok=None)


def test_stale_read_check_with_compare_and_sets() -> None:
    # A failed compare-and-set wrote nothing: a read of the value before it is not stale.
    failed = [w(1, "a", 0, 1, index=5), Op(2, CAS, "x", "b", 2, 3, 6, "z", False)]
    check_stale_reads([*failed, r(3, "a", 4, 5)])
    won = [w(1, "a", 0, 1, index=5), Op(2, CAS, "x", "b", 2, 3, 6, "a", True)]
    with pytest.raises(StaleRead):
        check_stale_reads([*won, r(3, "a", 4, 5)])
    # Once a write emptied the register, an empty read is not dated (the search judges it).
    emptied = [w(1, "a", 0, 1, index=5), Op(2, CAS, "x", None, 2, 3, 6, "a", True)]
    check_stale_reads([*emptied, r(3, None, 4, 5)])


def test_large_concurrent_history_is_decided_quickly() -> None:
    # 10 clients, 300 ops, heavy overlap: the memoized search must still finish at once.
    rng = random.Random(3)
    ops = []
    value: str | None = None
    for i in range(300):
        invoke = i * 3
        ret = invoke + rng.randrange(1, 30)
        if rng.random() < 0.3:
            value = f"v{i}"
            ops.append(w(i, value, invoke, ret if rng.random() < 0.9 else None))
        else:
            ops.append(r(i, value, invoke + 1, ret + 1))
    check_linearizable(ops)
