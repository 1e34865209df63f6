"""The checkers: each takes the history (and what it needs) and returns the problems it found.

An empty list means the property holds. Messages name the operations involved, so a failure
reads without the history at hand (the history file has everything).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from jepsen._history import FAIL, OK, UNKNOWN, History, Operation
from raftkv.testing import LinearizabilityViolation, check_linearizable

_MINORITY_WRITE_STATUSES = {
    "503",
    "504",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "RemoteProtocolError",
    "ReadError",
    "WriteError",
}


def linearizable(history: History) -> list[str]:
    """Per register, a total order that respects real time and the register's rules exists."""
    try:
        check_linearizable(history.register_ops())
    except LinearizabilityViolation as exc:
        return [_explain(history, exc.key)]
    except RuntimeError as exc:  # the search gave up: nothing is proven either way
        return [f"linearizability undecided: {exc}"]
    return []


def _explain(history: History, key: str) -> str:
    """The violation in words: the first read that saw an overwritten value, with its context.

    (The search proves there is no order; a stale read is the usual reason, and the operations
    around it are what a person needs to see.)
    """
    ops = [op for op in history.ops if op.key == key and op.f in ("write", "read")]
    writes = {op.value: op for op in ops if op.f == "write"}
    acked = [op for op in ops if op.f == "write" and op.outcome == OK]
    head = f"history of register {key!r} is not linearizable"
    for read in sorted(
        (op for op in ops if op.f == "read" and op.outcome == OK), key=lambda o: o.invoke
    ):
        source = writes.get(read.value)
        newer = [
            w
            for w in acked
            if w.complete < read.invoke and (source is None or w.invoke > source.complete)
        ]
        if newer:
            w = max(newer, key=lambda o: o.complete)
            around = [op for op in ops if abs(op.invoke - read.invoke) < 0.3][:25]
            lines = "\n  ".join(_op(op) for op in around)
            seen = "nothing" if source is None else _op(source)
            return (
                f"{head}: stale read {_op(read)} returned {seen}, but {_op(w)} was "
                f"acknowledged before the read began. Around it:\n  {lines}"
            )
    lines = "\n  ".join(_op(op) for op in ops[:40])
    return f"{head} (no single stale read explains it); first operations:\n  {lines}"


def failed_writes_unseen(history: History) -> list[str]:
    """A write refused for certain must never be read (values are unique per write)."""
    failed = {
        (op.key, op.value): op for op in history.ops if op.f == "write" and op.outcome == FAIL
    }
    return [
        f"read {_op(op)} saw the value of refused write {_op(failed[op.key, op.value])}"
        for op in history.ops
        if op.f in ("read", "sread") and op.outcome == OK and (op.key, op.value) in failed
    ]


def acked_writes_survive(history: History, keys: Iterable[str]) -> list[str]:
    """After the final heal, no acknowledged write is lost.

    Each final linearizable read must return a value whose write no acknowledged write of the
    same key certainly followed (a write invoked after it completed would have replaced it), and
    a key that had an acknowledged write must not read as absent. A write of unknown outcome
    (504, or no answer) certainly followed by nothing: it may take effect at any time after it
    was invoked, the client's giving up included — e.g. a forward held by TCP across a
    partition and delivered at the heal, to the leader of the same term.
    """
    writes = {(op.key, op.value): op for op in history.ops if op.f == "write"}
    acked = defaultdict(list)
    for op in history.ops:
        if op.f == "write" and op.outcome == OK:
            acked[op.key].append(op)
    problems = []
    for read in history.ops:
        if read.process != "final" or read.f != "read" or read.key not in set(keys):
            continue
        if read.outcome != OK:
            problems.append(f"final read {_op(read)} got no answer ({read.status})")
            continue
        source = writes.get((read.key, read.value))
        if read.value is not None and source is None:
            problems.append(f"final read {_op(read)} returned a value nobody wrote")
            continue
        if source is not None and source.outcome != OK:
            continue  # it may have applied after every acknowledged write
        later = [w for w in acked[read.key] if source is None or w.invoke > source.complete]
        if later:
            w = max(later, key=lambda o: o.complete)
            problems.append(
                f"acknowledged write {_op(w)} is lost: final read {_op(read)} "
                f"returns {'nothing' if source is None else _op(source)}"
            )
    return problems


def set_complete(history: History) -> list[str]:
    """Every acknowledged add is in every final listing; nothing there was never added."""
    adds = {op.key: op for op in history.ops if op.f == "add"}
    acked = {k for k, op in adds.items() if op.outcome == OK}
    failed = {k for k, op in adds.items() if op.outcome == FAIL}
    problems = []
    for listing in history.ops:
        if listing.f not in ("list", "slist"):
            continue
        if listing.outcome != OK:
            problems.append(f"final {listing.f} on node {listing.node} got no answer")
            continue
        present = set(listing.extra or [])
        lost, ghosts = sorted(acked - present), sorted(present - set(adds))
        refused = sorted(present & failed)
        if lost:
            problems.append(
                f"{listing.f} on node {listing.node}: {len(lost)} acknowledged "
                f"adds missing, e.g. {[_op(adds[k]) for k in lost[:5]]}"
            )
        if ghosts:
            problems.append(f"{listing.f} on node {listing.node}: never added: {ghosts[:5]}")
        if refused:
            problems.append(
                f"{listing.f} on node {listing.node}: refused adds present: "
                f"{[_op(adds[k]) for k in refused[:5]]}"
            )
    return problems


def converged(final_values: dict[int, dict[str, str | None]], history: History) -> list[str]:
    """Every node, read serializably after the heal, holds the same value for every key."""
    problems = []
    distinct = {tuple(sorted(v.items())) for v in final_values.values()}
    if len(distinct) > 1:
        problems.append(f"replicas differ after heal: {final_values}")
    listings = {
        op.node: tuple(sorted(op.extra or []))
        for op in history.ops
        if op.f == "slist" and op.outcome == OK
    }
    if len(set(listings.values())) > 1:
        sizes = {node: len(keys) for node, keys in listings.items()}
        problems.append(f"set listings differ between replicas after heal: sizes {sizes}")
    return problems


def minority(history: History) -> list[str]:
    """While cut off, a minority node acknowledges no write, and answers serializable reads."""
    problems = []
    for w in history.windows:
        if not w.minority or w.end is None:
            continue
        since = w.minority_from if w.minority_from is not None else w.start
        inside = [
            op
            for op in history.ops
            if op.node in w.minority and op.invoke >= since and op.complete <= w.end
        ]
        for op in inside:
            if op.f in ("write", "add", "probe") and op.outcome == OK:
                problems.append(
                    f"{w.name} {w.detail}: minority node {op.node} acknowledged "
                    f"{_op(op)} ({op.status})"
                )
            elif (
                op.f in ("write", "add")
                and op.status not in _MINORITY_WRITE_STATUSES
                and op.outcome != FAIL
            ):
                problems.append(f"{w.name}: minority write {_op(op)} answered {op.status}")
        sreads = [op for op in inside if op.f == "sread" and op.process == "nemesis"]
        for node in w.minority:
            mine = [op for op in sreads if op.node == node]
            bad = [op for op in mine if op.outcome != OK]
            if not mine:
                problems.append(f"{w.name} {w.detail}: no serializable read reached node {node}")
            if bad:
                problems.append(
                    f"{w.name} {w.detail}: {len(bad)}/{len(mine)} serializable "
                    f"reads on minority node {node} failed, e.g. {_op(bad[0])} "
                    f"({bad[0].status})"
                )
    return problems


def recovery(history: History, bound: float) -> list[str]:
    """After every heal the cluster served a write within ``bound`` seconds."""
    return [
        f"{w.name} ({w.detail}): served again after "
        f"{'never' if w.recovered_after is None else f'{w.recovered_after:.2f}s'}, "
        f"bound {bound:.1f}s"
        for w in history.windows
        if w.end is not None and (w.recovered_after is None or w.recovered_after > bound)
    ]


def _op(op: Operation) -> str:
    value = op.value if op.value is None or len(op.value) < 24 else op.value[:24] + "..."
    return (
        f"#{op.id} {op.f}({op.key})={value} on n{op.node} "
        f"[{op.invoke:.3f},{op.complete:.3f}] {op.outcome}"
    )


__all__ = [
    "FAIL",
    "OK",
    "UNKNOWN",
    "acked_writes_survive",
    "converged",
    "failed_writes_unseen",
    "linearizable",
    "minority",
    "recovery",
    "set_complete",
]
