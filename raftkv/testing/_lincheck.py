"""Linearizability checking of client histories (Wing & Gong search with Lowe's memoization).

A history is a list of ``Op``: writes, compare-and-sets and reads on named registers, each with
an invocation time and, if the client saw an answer, a return time (any totally ordered integers;
the simulator uses its event counter). An op that never returned (``ret is None``) is a *maybe*
op: it may have taken effect at any point after its invocation, or never (a compare-and-set
whose outcome is unknown, too: if it took effect, the register held its expected value then). A
read that never returned tells nothing and is ignored.

Registers are independent objects, so the history is checked one key at a time
(linearizability is compositional, Herlihy & Wing 1990 §3.3). For one key the search looks for a
total order of the ops that respects real time (``a.ret < b.invoke`` puts ``a`` first) and the
register's sequential specification, memoizing (set of linearized ops, register value) states
that already failed (Lowe 2017, the approach of Knossos and Porcupine). Histories of a few
hundred ops per key are checked in milliseconds when concurrency is modest.

``check_stale_reads`` is the simpler, cheaper property: a read never returns a value older than
a write acknowledged before the read began (needs each write's log position).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
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

    def __post_init__(self) -> None:
        if self.ret is not None and self.ret < self.invoke:
            raise ValueError(f"op {self.id} returns ({self.ret}) before it is invoked")
        if self.kind is OpKind.CAS and (self.ret is None) != (self.ok is None):
            raise ValueError(f"compare-and-set {self.id}: an answer needs an outcome, and back")

    def __str__(self) -> str:
        ret = "?" if self.ret is None else str(self.ret)
        if self.kind is OpKind.CAS:
            outcome = "" if self.ok is None else (" ok" if self.ok else " failed")
            what = f"cas({self.key}) {self.expected}->{self.value}{outcome}"
        else:
            what = f"{'w' if self.kind is OpKind.WRITE else 'r'}({self.key})={self.value}"
        return f"#{self.id} {what} [{self.invoke},{ret}]"


class LinearizabilityViolation(AssertionError):
    """The history has no linearization; ``key`` and ``ops`` say where."""

    def __init__(self, key: str, ops: Sequence[Op], detail: str = "") -> None:
        lines = "\n  ".join(str(op) for op in sorted(ops, key=lambda o: (o.invoke, o.id)))
        extra = f"\n{detail}" if detail else ""
        super().__init__(f"history of key {key!r} is not linearizable:\n  {lines}{extra}")
        self.key = key
        self.ops = tuple(ops)


class StaleRead(AssertionError):
    """A read returned a value older than a write acknowledged before the read began."""


def _relevant(ops: Iterable[Op]) -> dict[str, list[Op]]:
    """Group by key, dropping what cannot matter: unanswered reads, and maybe-writes (or
    maybe-CASes) whose value nothing observed (no read returned it, no compare-and-set
    expected it).

    Such a write can always be linearized "never", so removing it changes no verdict; it only
    shrinks the search. Not on a key with a failed compare-and-set: that one needed the
    register to hold anything but its expected value, which any write may have provided.
    """
    by_key: dict[str, list[Op]] = defaultdict(list)
    observed: set[tuple[str, str | None]] = set()
    keep_all: set[str] = set()
    for op in ops:
        if op.kind is OpKind.READ:
            if op.ret is not None:
                by_key[op.key].append(op)
                observed.add((op.key, op.value))
            continue
        by_key[op.key].append(op)
        if op.kind is OpKind.CAS:
            if op.ok is False:
                keep_all.add(op.key)
            else:
                observed.add((op.key, op.expected))
    for key, key_ops in by_key.items():
        if key not in keep_all:
            by_key[key] = [
                op
                for op in key_ops
                if op.kind is OpKind.READ or op.ret is not None or (key, op.value) in observed
            ]
    return dict(by_key)


def _step(op: Op, value: str | None) -> tuple[bool, str | None]:
    """Whether ``op`` may take effect when the register holds ``value``, and what it holds
    after. A maybe-CAS is placed only where it takes effect (elsewhere it changes nothing,
    which is the same as never)."""
    if op.kind is OpKind.WRITE:
        return True, op.value
    if op.kind is OpKind.READ:
        return op.value == value, value
    if op.ok is False:
        return op.expected != value, value
    return op.expected == value, op.value


def find_linearization(
    ops: Sequence[Op], initial: str | None = None, max_states: int = 2_000_000
) -> list[Op] | None:
    """A linearization of the ops of ONE register (a list in linearization order), or None.

    Maybe-writes the result leaves out took effect never. Raises ``RuntimeError`` if the search
    visits more than ``max_states`` states (the history is too concurrent to decide cheaply).
    """
    ops = sorted(ops, key=lambda o: (o.invoke, o.id))
    n = len(ops)
    if n == 0:
        return []
    rets = [_INF if op.ret is None else op.ret for op in ops]
    required = 0
    for i, op in enumerate(ops):
        if op.ret is not None:
            required |= 1 << i
    seen: set[tuple[int, str | None]] = set()
    # Depth-first search over (linearized-set, value); the stack holds the chosen order.
    order: list[int] = []
    stack: list[tuple[int, str | None, list[int]]] = []

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

    def successors(done: int, value: str | None) -> list[int]:
        out = [i for i in candidates(done) if _step(ops[i], value)[0]]
        # Try completed ops before maybe-writes: they must be placed anyway.
        out.sort(key=lambda i: (ops[i].ret is None, ops[i].invoke))
        return out

    done, value = 0, initial
    stack.append((done, value, successors(done, value)))
    seen.add((done, value))
    while stack:
        done, value, todo = stack[-1]
        if done & required == required:
            return [ops[i] for i in order]
        if not todo:
            stack.pop()
            if order:
                order.pop()
            continue
        i = todo.pop(0)
        op = ops[i]
        new_done = done | 1 << i
        new_value = _step(op, value)[1]
        if (new_done, new_value) in seen:
            continue
        if len(seen) >= max_states:
            raise RuntimeError(f"linearizability search gave up after {max_states} states")
        seen.add((new_done, new_value))
        order.append(i)
        stack.append((new_done, new_value, successors(new_done, new_value)))
    return None


def check_linearizable(history: Iterable[Op], initial: str | None = None) -> None:
    """Raise ``LinearizabilityViolation`` unless every register's history is linearizable."""
    for key, ops in sorted(_relevant(history).items()):
        if find_linearization(ops, initial) is None:
            raise LinearizabilityViolation(key, ops)


def check_stale_reads(history: Iterable[Op]) -> None:
    """Raise ``StaleRead`` if a read returned a value older than a write acked before it began.

    Writes need ``index`` (their log position; a compare-and-set has one only if it took
    effect). A read's value is dated by the index of the write that wrote it (values must be
    unique per key; ``None`` dates to 0, unless a write emptied the register: such reads are
    not dated, the linearizability check covers them).
    """
    ops = list(history)
    written_at: dict[tuple[str, str | None], int] = {}
    emptied: set[str] = set()
    acked: dict[str, list[tuple[int, int, Op]]] = defaultdict(list)  # key -> (ret, index, op)
    for op in ops:
        if op.kind is OpKind.READ or op.index is None or op.ok is False:
            continue
        if op.value is None:
            emptied.add(op.key)
        written_at[op.key, op.value] = op.index
        if op.ret is not None:
            acked[op.key].append((op.ret, op.index, op))
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
