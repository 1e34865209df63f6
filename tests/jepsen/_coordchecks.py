"""The checkers of the coordination workloads (``_watchload``).

Both read the committed history of their prefix as the final ``whist`` operations recorded it:
one line ``[revision, [event, ...]]`` per revision, an event ``[type, key, value,
create_revision]``. The watch checks hold that reference against the acknowledged writes and
the store's reads at past revisions before they compare every watcher's stream with it.
"""

from __future__ import annotations

import json
from collections import defaultdict

from jepsen._checks import _op
from jepsen._history import FAIL, OK, History, Operation

Revision = tuple[int, list[list]]  # (revision, its events)


def committed(history: History, prefix: str) -> tuple[list[Revision] | None, list[str]]:
    """The reference history of ``prefix`` (the first complete final read), and the problems:
    a member that did not give it whole, or gave another."""
    reads = [op for op in history.ops if op.f == "whist" and op.key == prefix]
    problems = [
        f"final watch of {prefix} on n{op.node} did not deliver up to revision {op.index} "
        f"({op.status})"
        for op in reads
        if op.outcome != OK
    ]
    whole = [op for op in reads if op.outcome == OK]
    if not whole:
        return None, [*problems, f"no member gave the committed history of {prefix}"]
    parsed = {op.node: [(r, e) for r, e in map(json.loads, op.extra or [])] for op in whole}
    reference = parsed[whole[0].node]
    for node, revisions in parsed.items():
        if revisions != reference:
            at = next(
                (a for a, b in zip(reference, revisions, strict=False) if a != b),
                (reference + revisions)[min(len(reference), len(revisions))],
            )
            problems.append(
                f"members differ on the history of {prefix}: n{whole[0].node} and n{node} "
                f"first differ at {at} ({len(reference)} and {len(revisions)} revisions)"
            )
    order = [r for r, _ in reference]
    if order != sorted(set(order)):
        problems.append(f"the history of {prefix} on n{whole[0].node} repeats or reorders")
    return reference, problems


def watch_history(history: History, prefix: str) -> list[str]:
    """The reference is what was written: every acknowledged put or delete under ``prefix`` is
    there at its revision, every put there was asked for and not refused, and the store read at
    a past revision holds what the reference says it held then."""
    reference, problems = committed(history, prefix)
    if reference is None:
        return problems
    at = dict(reference)
    writes = [op for op in history.ops if op.f in ("wput", "wdel") and op.key.startswith(prefix)]
    for op in writes:
        if op.outcome != OK:
            continue
        kind = "put" if op.f == "wput" else "delete"
        if not any(e[0] == kind and e[1] == op.key for e in at.get(op.index or 0, [])):
            problems.append(
                f"acknowledged {_op(op)} at revision {op.index} is not in the committed "
                f"history (there: {at.get(op.index or 0)})"
            )
    asked = {(op.key, op.value): op for op in writes if op.f == "wput"}
    for revision, events in reference:
        for kind, key, value, _ in events:
            source = asked.get((key, value))
            if kind == "put" and (source is None or source.outcome == FAIL):
                why = "was never written" if source is None else f"was refused: {_op(source)}"
                problems.append(f"revision {revision} puts {key}={value}, which {why}")
    return problems + _spot_reads(history, prefix, reference)


def _spot_reads(history: History, prefix: str, reference: list[Revision]) -> list[str]:
    problems = []
    for read in (op for op in history.ops if op.f == "wlist" and op.key == prefix):
        if read.outcome != OK:
            continue
        state: dict[str, list] = {}
        for revision, events in reference:
            if revision > (read.index or 0):
                break
            _apply(state, events)
        expected = sorted([k, v[0], v[1]] for k, v in state.items())
        got = sorted(json.loads(line) for line in read.extra or [])
        if got != expected:
            problems.append(
                f"the store at revision {read.index} (n{read.node}) holds {got[:6]}, but the "
                f"committed history says {expected[:6]}"
            )
    return problems


def _apply(state: dict[str, list], events: list[list]) -> None:
    for kind, key, value, create in events:
        if kind == "put":
            state[key] = [value, create]
        else:
            state.pop(key, None)


def watch_streams(history: History, prefix: str) -> list[str]:
    """Every watcher's events equal the committed history of its prefix from its start
    revision up to where the server said it had delivered: no gap, no repeat, same order,
    same events."""
    reference, _ = committed(history, prefix)
    if reference is None:
        return []
    sessions: dict[str, list[Operation]] = defaultdict(list)
    for op in history.ops:
        if op.f in ("wopen", "event", "wprogress", "werror") and op.process.startswith("wa"):
            sessions[op.process].append(op)
    problems = []
    for process, ops in sessions.items():
        problem = _one_watcher(process, ops, reference)
        if problem:
            problems.append(problem)
    return problems


def _start(ops: list[Operation]) -> int | None:
    """Where a watcher began: the start it asked for, or (watching from now) the revision after
    its first stream's opening progress event."""
    opened = [op for op in ops if op.f == "wopen" and op.outcome == OK]
    if not opened:
        return None
    if opened[0].index is not None:
        return opened[0].index
    progress = [op for op in ops if op.f == "wprogress" and op.id > opened[0].id]
    return progress[0].index + 1 if progress and progress[0].index is not None else None


def _one_watcher(process: str, ops: list[Operation], reference: list[Revision]) -> str | None:
    start = _start(ops)
    events = [op for op in ops if op.f == "event"]
    if start is None:
        return f"watcher {process} got events but no stream opening" if events else None
    prefix = ops[0].key
    head = f"watcher {process} of {prefix!r} from revision {start}"
    last = 0
    for op in events:
        if (op.index or 0) <= last:
            return (
                f"{head}: revision {op.index} from n{op.node} came after {last} (repeat or reorder)"
            )
        last = op.index or 0
    upto = max([op.index or 0 for op in ops if op.f != "wopen"] + [start - 1])
    expected = {}
    for revision, changes in reference:
        mine = [e for e in changes if e[1].startswith(prefix)]
        if start <= revision <= upto and mine:
            expected[revision] = mine
    got = {op.index: [json.loads(e) for e in op.extra or []] for op in events}
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = [r for r in sorted(set(got) & set(expected)) if got[r] != expected[r]]
    if missing:
        return f"{head}, delivered up to {upto}: missed revisions {missing[:8]} ({len(missing)})"
    if extra:
        return f"{head}: revisions {extra[:8]} are not changes of its prefix ({len(extra)})"
    if wrong:
        r = wrong[0]
        return f"{head}: revision {r} came as {got[r]}, committed as {expected[r]}"
    return None
