"""Linearizability checking of client histories (Wing & Gong search with Lowe's memoization).

A history is a list of ``Op``: writes, compare-and-sets and reads on named registers, each with
an invocation time and, if the client saw an answer, a return time (any totally ordered integers;
the simulator uses its event counter). An op that never returned (``ret is None``) is a *maybe*
op: it may have taken effect at any point after its invocation, or never (a compare-and-set
whose outcome is unknown, too: if it took effect, the register held its expected value then). A
read that never returned tells nothing and is ignored.

A transaction (``TXN``) compares, reads and writes several registers at one point: if every
compare holds it writes its ``success`` pairs, else its ``failure`` pairs; ``ok`` says which
(None while unanswered: then it may take effect either way, or never). Its ``reads`` are the
values it returned, as it found the registers before its writes.

Registers no transaction ties together are independent objects, so the history is checked one
*group* at a time: the keys that transactions connect (a key no transaction touches is a group
of its own). Linearizability is compositional (Herlihy & Wing 1990 §3.3), so this decides the
whole history. For one group the search looks for a total order of the ops that respects real
time (``a.ret < b.invoke`` puts ``a`` first) and the registers' sequential specification,
memoizing (set of linearized ops, registers' values) states that already failed (Lowe 2017, the
approach of Knossos and Porcupine). Histories of a few hundred ops per group are checked in
milliseconds when concurrency is modest.

``check_stale_reads`` is the simpler, cheaper property: a read never returns a value older than
a write acknowledged before the read began (needs each write's log position).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "LinearizabilityViolation",
    "Op",
    "OpKind",
    "StaleRead",
    "check_linearizable",
    "check_stale_reads",
    "find_linearization",
]

_INF = float("inf")


class OpKind(enum.Enum):
    WRITE = "write"
    READ = "read"
    CAS = "cas"
    TXN = "txn"


Pairs = tuple[tuple[str, str | None], ...]
State = tuple[str | None, ...]  # a group's registers' values, in the order of its keys


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation on register ``key``.

    For a write ``value`` is the value written (``None`` empties the register); for a read it
    is the value returned (``None``: empty). A compare-and-set (``CAS``) writes ``value`` if the
    register holds ``expected``; ``ok`` is its answer (None while unanswered). ``ret is None``:
    the client never saw an answer. ``index`` is the log index a write (or a compare-and-set
    that took effect) was applied at, when known (used by ``check_stale_reads`` only).
    """

    id: int
    kind: OpKind
    key: str
    value: str | None
    invoke: int
    ret: int | None = None
    index: int | None = None
    expected: str | None = None
    ok: bool | None = None
    # A transaction's compares (register holds value), its two branches and what it read.
    compares: Pairs = ()
    success: Pairs = ()
    failure: Pairs = ()
    reads: Pairs = ()

    def __post_init__(self) -> None:
        if self.ret is not None and self.ret < self.invoke:
            raise ValueError(f"op {self.id} returns ({self.ret}) before it is invoked")
        conditional = self.kind is OpKind.CAS or self.kind is OpKind.TXN
        if conditional and (self.ret is None) != (self.ok is None):
            raise ValueError(f"{self.kind.value} {self.id}: an answer needs an outcome, and back")
        if self.kind is OpKind.TXN and self.ret is None and self.reads:
            raise ValueError(f"txn {self.id}: reads without an answer")

    @property
    def keys(self) -> frozenset[str]:
        """The registers the op touches."""
        if self.kind is not OpKind.TXN:
            return frozenset((self.key,))
        pairs = self.compares + self.success + self.failure + self.reads
        return frozenset(k for k, _ in pairs)

    def writes(self) -> Pairs:
        """Every (key, value) the op may write."""
        if self.kind is OpKind.TXN:
            return self.success + self.failure
        return () if self.kind is OpKind.READ else ((self.key, self.value),)

    def __str__(self) -> str:
        ret = "?" if self.ret is None else str(self.ret)
        outcome = "" if self.ok is None else (" ok" if self.ok else " failed")
        if self.kind is OpKind.TXN:
            what = f"txn {_pairs(self.compares)} ? {_pairs(self.success)} : "
            what += f"{_pairs(self.failure)}{outcome}"
            if self.reads:
                what += f" read {_pairs(self.reads)}"
        elif self.kind is OpKind.CAS:
            what = f"cas({self.key}) {self.expected}->{self.value}{outcome}"
        else:
            what = f"{'w' if self.kind is OpKind.WRITE else 'r'}({self.key})={self.value}"
        return f"#{self.id} {what} [{self.invoke},{ret}]"


def _pairs(pairs: Pairs) -> str:
    return "{" + ",".join(f"{k}={v}" for k, v in pairs) + "}"


class LinearizabilityViolation(AssertionError):
    """The history has no linearization; ``key`` and ``ops`` say where."""

    def __init__(self, key: str, ops: Sequence[Op], detail: str = "") -> None:
        lines = "\n  ".join(str(op) for op in sorted(ops, key=lambda o: (o.invoke, o.id)))
        extra = f"\n{detail}" if detail else ""
        what = f"keys {key!r}" if "," in key else f"key {key!r}"
        super().__init__(f"history of {what} is not linearizable:\n  {lines}{extra}")
        self.key = key
        self.ops = tuple(ops)


class StaleRead(AssertionError):
    """A read returned a value older than a write acknowledged before the read began."""


def _groups(ops: Iterable[Op]) -> dict[tuple[str, ...], list[Op]]:
    """The ops by group: the sorted keys that transactions tie together (union-find)."""
    ops = list(ops)
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for op in ops:
        first, *rest = sorted(op.keys)
        for key in rest:
            parent[root(key)] = root(first)
        root(first)
    members: dict[str, list[str]] = defaultdict(list)
    for key in parent:
        members[root(key)].append(key)
    name = {k: tuple(sorted(m)) for m in members.values() for k in m}
    by_group: dict[tuple[str, ...], list[Op]] = defaultdict(list)
    for op in ops:
        by_group[name[next(iter(op.keys))]].append(op)
    return dict(by_group)


def _relevant(ops: Iterable[Op]) -> dict[tuple[str, ...], list[Op]]:
    """Group the ops (see ``_groups``), dropping what cannot matter: unanswered reads, and
    maybe-writes (maybe-CASes, maybe-transactions) none of whose values anything observed (no
    read returned it, no compare-and-set expected it, no transaction compared or read it).

    Such an op can always be linearized "never", so removing it changes no verdict; it only
    shrinks the search. Not if it writes a key a failed compare-and-set or transaction
    compared: that one needed the register to hold anything but the value it compared, which
    any write may have provided.
    """
    by_group = _groups(op for op in ops if op.kind is not OpKind.READ or op.ret is not None)
    for group, group_ops in by_group.items():
        observed: set[tuple[str, str | None]] = set()
        unequal: set[str] = set()  # keys a failed compare needed to differ
        for op in group_ops:
            if op.kind is OpKind.READ:
                observed.add((op.key, op.value))
            elif op.kind is OpKind.CAS:
                observed.add((op.key, op.expected))
                if op.ok is False:
                    unequal.add(op.key)
            elif op.kind is OpKind.TXN:
                observed.update(op.compares)
                observed.update(op.reads)
                if op.ok is False:
                    unequal.update(k for k, _ in op.compares)
        by_group[group] = [
            op
            for op in group_ops
            if op.ret is not None or any(w in observed or w[0] in unequal for w in op.writes())
        ]
    return by_group


Step = Callable[[State], "State | None"]


def _stepper(op: Op, slot: dict[str, int]) -> Step:
    """``op`` as a step of its group's state: the state after it takes effect there, or None
    if it cannot take effect in that state. A maybe-CAS is placed only where it takes effect
    (elsewhere it changes nothing, which is the same as never)."""

    def assign(state: State, writes: tuple[tuple[int, str | None], ...]) -> State:
        if not writes:
            return state
        out = list(state)
        for p, v in writes:
            out[p] = v
        return tuple(out)

    kind, value = op.kind, op.value
    if kind is OpKind.TXN:
        compares = tuple((slot[k], v) for k, v in op.compares)
        reads = tuple((slot[k], v) for k, v in op.reads)
        success = tuple((slot[k], v) for k, v in op.success)
        failure = tuple((slot[k], v) for k, v in op.failure)
        ok = op.ok

        def txn(state: State) -> State | None:
            if any(state[p] != v for p, v in reads):
                return None
            held = all(state[p] == v for p, v in compares)
            if ok is not None and held is not ok:
                return None
            return assign(state, success if held else failure)

        return txn
    p = slot[op.key]
    if kind is OpKind.WRITE:
        return lambda state: assign(state, ((p, value),))
    if kind is OpKind.READ:
        return lambda state: state if state[p] == value else None
    expected = op.expected
    if op.ok is False:
        return lambda state: state if state[p] != expected else None
    return lambda state: assign(state, ((p, value),)) if state[p] == expected else None


def find_linearization(
    ops: Sequence[Op], initial: str | None = None, max_states: int = 2_000_000
) -> list[Op] | None:
    """A linearization of the ops of ONE group of registers (a list in linearization order),
    or None; every register starts as ``initial``.

    Maybe-writes the result leaves out took effect never. Raises ``RuntimeError`` if the search
    visits more than ``max_states`` states (the history is too concurrent to decide cheaply).
    """
    ops = sorted(ops, key=lambda o: (o.invoke, o.id))
    n = len(ops)
    if n == 0:
        return []
    keys = sorted(frozenset().union(*(op.keys for op in ops)))
    slot = {k: p for p, k in enumerate(keys)}
    steps = [_stepper(op, slot) for op in ops]
    rets = [_INF if op.ret is None else op.ret for op in ops]
    required = 0
    for i, op in enumerate(ops):
        if op.ret is not None:
            required |= 1 << i
    seen: set[tuple[int, State]] = set()
    # Depth-first search over (linearized-set, state); the stack holds the chosen order.
    order: list[int] = []
    stack: list[tuple[int, State, list[tuple[int, State]]]] = []

    invokes = [op.invoke for op in ops]

    def candidates(done: int) -> list[int]:
        # An op may go next if no other pending op returned before it was invoked. Ops are in
        # invocation order and return after they are invoked, so the pending op that returns
        # first is among those invoked before the earliest return seen so far: one scan of
        # that window, from the first pending op, finds both.
        i = (~done & (done + 1)).bit_length() - 1  # the first pending op
        min_ret = _INF
        window = []
        while i < n and invokes[i] <= min_ret:
            if not done >> i & 1:
                window.append(i)
                min_ret = min(min_ret, rets[i])
            i += 1
        return [i for i in window if invokes[i] <= min_ret]

    def successors(done: int, state: State) -> list[tuple[int, State]]:
        out = []
        for i in candidates(done):
            after = steps[i](state)
            if after is not None:
                out.append((i, after))
        # Try completed ops before maybe-writes: they must be placed anyway.
        out.sort(key=lambda t: (ops[t[0]].ret is None, ops[t[0]].invoke))
        return out

    done, state = 0, tuple(initial for _ in keys)
    stack.append((done, state, successors(done, state)))
    seen.add((done, state))
    while stack:
        done, state, todo = stack[-1]
        if done & required == required:
            return [ops[i] for i in order]
        if not todo:
            stack.pop()
            if order:
                order.pop()
            continue
        i, new_state = todo.pop(0)
        new_done = done | 1 << i
        if (new_done, new_state) in seen:
            continue
        if len(seen) >= max_states:
            raise RuntimeError(f"linearizability search gave up after {max_states} states")
        seen.add((new_done, new_state))
        order.append(i)
        stack.append((new_done, new_state, successors(new_done, new_state)))
    return None


def check_linearizable(history: Iterable[Op], initial: str | None = None) -> None:
    """Raise ``LinearizabilityViolation`` unless every group's history is linearizable."""
    for group, ops in sorted(_relevant(history).items()):
        if find_linearization(ops, initial) is None:
            raise LinearizabilityViolation(",".join(group), ops)


def check_stale_reads(history: Iterable[Op]) -> None:
    """Raise ``StaleRead`` if a read returned a value older than a write acked before it began.

    Writes need ``index`` (their log position; a compare-and-set has one only if it took
    effect; a transaction's writes are dated by its index). A read's value is dated by the
    index of the write that wrote it (values must be unique per key; ``None`` dates to 0,
    unless a write emptied the register: such reads are not dated, the linearizability check
    covers them).
    """
    ops = list(history)
    written_at: dict[tuple[str, str | None], int] = {}
    emptied: set[str] = set()
    acked: dict[str, list[tuple[int, int, Op]]] = defaultdict(list)  # key -> (ret, index, op)
    for op in ops:
        if op.kind is OpKind.READ or op.index is None:
            continue
        dated, taken = _dated_writes(op)
        for key, value in dated:
            if value is None:
                emptied.add(key)
            written_at[key, value] = op.index
        if op.ret is not None:
            for key, _ in taken:
                acked[key].append((op.ret, op.index, op))
    for lst in acked.values():
        lst.sort(key=lambda t: t[0])
    for op in ops:
        if op.kind is not OpKind.READ or op.ret is None:
            continue
        if op.value is None and op.key in emptied:
            continue
        seen_index = 0 if op.value is None else written_at.get((op.key, op.value))
        if seen_index is None:
            raise StaleRead(f"read {op} returned a value no write with a known index wrote")
        newest: Op | None = None
        newest_index = -1
        for ret, index, w in acked.get(op.key, ()):
            if ret >= op.invoke:
                break
            if index > newest_index:
                newest, newest_index = w, index
        if newest is not None and newest_index > seen_index:
            raise StaleRead(
                f"read {op} saw the write at index {seen_index}, but write {newest} "
                f"(index {newest_index}) was acknowledged before the read began"
            )


def _dated_writes(op: Op) -> tuple[Pairs, Pairs]:
    """The writes ``op`` (applied at ``op.index``) may have made, and those it made for certain
    (a transaction's branch is certain only once answered; values are unique, so the branch it
    did not take dates nothing a read returned)."""
    if op.kind is OpKind.TXN:
        taken = () if op.ok is None else op.success if op.ok else op.failure
        return op.writes(), taken
    writes = () if op.ok is False else op.writes()
    return writes, writes
