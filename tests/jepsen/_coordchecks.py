"""The checkers of the coordination workloads (``_watchload``, ``_lockload``).

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


def lock_fencing(history: History, prefix: str, queue: str, register: str) -> list[str]:
    """Observed through the committed history of ``prefix``: every write of ``register`` was
    made while its token's key was the oldest of the ``queue`` (the holder), tokens never
    decrease along revisions, acknowledged writes are there and refused ones are not; tokens
    strictly increase from acquisition to acquisition; no client wrote believing it held the
    lock after a later holder had acquired it."""
    reference, problems = committed(history, prefix)
    if reference is None:
        return problems
    holders: dict[str, int] = {}  # queue key -> its create revision
    created: set[int] = set()
    present: dict[str, int] = {}  # register value -> revision
    last_token = 0
    for revision, events in reference:
        holder = min(holders.values(), default=None)
        for kind, key, value, create in events:
            if key == register and kind == "put":
                token = int(value.split(":")[0])
                present[value] = revision
                if token != holder:
                    problems.append(
                        f"{register} written at revision {revision} with token {token} while "
                        f"the holder was {holder}: two tenures overlap"
                    )
                if token < last_token:
                    problems.append(
                        f"token went back from {last_token} to {token} at revision {revision}"
                    )
                last_token = max(last_token, token)
            elif key.startswith(queue) and kind == "put":
                holders[key] = create
                created.add(create)
            elif key.startswith(queue):
                holders.pop(key, None)
    return problems + _lock_writes(history, register, present) + _lock_tokens(history, created)


def _lock_writes(history: History, register: str, present: dict[str, int]) -> list[str]:
    problems = []
    writes = {
        op.value: op for op in history.ops if op.f in ("lwrite", "lzombie") and op.key == register
    }
    for op in writes.values():
        if op.outcome == OK and present.get(op.value or "") != op.index:
            problems.append(f"acknowledged guarded write {_op(op)} at {op.index} is not there")
        if op.outcome == FAIL and op.value in present:
            problems.append(
                f"refused guarded write {_op(op)} ({op.status}) is at {present[op.value or '']}"
            )
    ghosts = sorted(set(present) - set(writes))
    if ghosts:
        problems.append(f"{register} holds values nobody wrote: {ghosts[:5]}")
    return problems


def _lock_tokens(history: History, created: set[int]) -> list[str]:
    problems = []
    acquired = sorted(
        (op for op in history.ops if op.f == "acquire" and op.outcome == OK),
        key=lambda o: o.complete,
    )
    by_token: dict[int, Operation] = {}
    for op in acquired:
        token = op.index or 0
        if token in by_token:
            problems.append(f"token {token} given twice: {_op(by_token[token])}, {_op(op)}")
        by_token[token] = op
        if token not in created:
            problems.append(f"{_op(op)}: token {token} is no lock key's create revision")
    for b in acquired:
        before = [a for a in acquired if a.complete < b.invoke and (a.index or 0) >= (b.index or 0)]
        if before:
            problems.append(
                f"token {b.index} of {_op(b)} is not above {before[0].index} of "
                f"{_op(before[0])}, which held the lock before it asked"
            )
    for w in (op for op in history.ops if op.f == "lwrite"):
        mine = int((w.value or "0").split(":")[0])
        later = [a for a in acquired if (a.index or 0) > mine and a.complete < w.invoke]
        if later:
            problems.append(
                f"{w.process} wrote {_op(w)} believing it held the lock (token {mine}), after "
                f"{_op(later[0])} had acquired it: two tenures overlap in real time"
            )
    return problems


def healed_at(history: History) -> float:
    """When the last fault was healed and a write served again (0: no fault)."""
    if not history.windows:
        return 0.0
    end = max(w.end or 0.0 for w in history.windows)
    served = [
        op.complete
        for op in history.ops
        if op.f == "probe" and op.outcome == OK and op.complete >= end
    ]
    return min(served, default=end)


def lock_waiters(history: History, bound: float) -> list[str]:
    """Every client waiting for the lock when the faults healed got it within ``bound``."""
    healed = healed_at(history)
    attempts: dict[str, list[Operation]] = defaultdict(list)
    for op in history.ops:
        if op.f == "acquire":
            attempts[op.process].append(op)
    problems = []
    for process, ops in sorted(attempts.items()):
        if not any(op.invoke <= healed < op.complete for op in ops):
            continue
        got = [op for op in ops if op.outcome == OK and op.complete >= healed]
        if not got:
            problems.append(
                f"{process} was waiting for the lock when the faults healed at {healed:.2f}s "
                f"and never got it: {[_op(op) + ' ' + op.status for op in ops[-3:]]}"
            )
        elif got[0].complete - healed > bound:
            problems.append(
                f"{process} was waiting when the faults healed at {healed:.2f}s and got the "
                f"lock only after {got[0].complete - healed:.2f}s (bound {bound:.1f}s): "
                f"{_op(got[0])}"
            )
    return problems
