"""``Watchers``: simulated watches, each on one node, from a start index, over a few keys.

A watcher records every write its node applies that changes one of its keys, from its start
index on, in order: what a watch stream delivers. It starts with what its node already applied
from the start index (the node's revision history, ``KVStateMachine.history``); when its node
restores a snapshot it takes the writes the snapshot covers from the snapshot's history; when
its node crashes and restarts, it resumes after the last event it received, as the real client
does (``Last-Event-ID``), and the node's re-application of entries it delivered before is not
delivered twice.

Checked as it goes: each event must be the next committed write of the watcher's keys after the
previous one (no gap, no repeat, nothing out of order, nothing never committed). At the end:
the events are exactly the committed writes of its keys from its start up to what its node
applied.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ._committed import CommittedLog, Position, Write
from ._invariants import InvariantViolation
from ._simnode import SimNode
from ._transcript import Transcript

__all__ = ["Watcher", "Watchers"]


@dataclass(slots=True)
class Watcher:
    id: int
    node: int
    keys: tuple[str, ...]
    start: int
    events: list[Write] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"w{self.id}"

    @property
    def last(self) -> Position:
        """Where it resumes after: its last event's (index, key), or just before its start. A
        transaction's writes share one index, in key order, as one revision's events do."""
        return self.events[-1][:2] if self.events else (self.start, "")


class Watchers:
    def __init__(self, committed: CommittedLog, transcript: Transcript) -> None:
        self._committed = committed
        self._tx = transcript
        self.all: list[Watcher] = []
        self._on: dict[int, list[Watcher]] = {}  # node id -> its watchers

    def watching(self, node_id: int) -> bool:
        return node_id in self._on

    def add(self, node: SimNode, keys: tuple[str, ...], start: int) -> Watcher:
        w = Watcher(len(self.all) + 1, node.id, keys, max(start, 1))
        self.all.append(w)
        self._on.setdefault(node.id, []).append(w)
        self._tx.emit(f"{node.id}: {w.name} watches {','.join(keys)} from {w.start}")
        self.caught_up(node)
        return w

    def caught_up(self, node: SimNode) -> None:
        """Deliver what ``node`` applied that its watchers have not had (on a new watch, and
        after a snapshot restored it): from its state machine's history."""
        history = node.sm.history
        for w in self._on.get(node.id, ()):
            keys = w.keys
            for p in range(bisect.bisect_right(history, w.last, key=_position), len(history)):
                if history[p][1] in keys:
                    self._deliver(w, history[p])

    def on_write(self, node_id: int, write: Write) -> None:
        """``node_id`` applied ``write`` (a write that changed a register)."""
        for w in self._on.get(node_id, ()):
            if write[:2] > w.last and write[1] in w.keys:
                self._deliver(w, write)

    def _deliver(self, w: Watcher, write: Write) -> None:
        want = self._committed.next_after(w.keys, w.last)
        if write != want:
            raise InvariantViolation(
                "a watch delivers the committed history",
                f"{w.name} on node {w.node} gets {_fmt(write)} after "
                f"{_fmt_position(w.last)}; the next committed write of {','.join(w.keys)} "
                f"is {_fmt(want)}",
            )
        w.events.append(write)
        self._tx.emit(f"  {w.name} event {_fmt(write)}")

    def check(self, nodes: dict[int, SimNode]) -> None:
        """Every watcher's events are the committed writes of its keys from its start up to
        what its node applied (up to its last event, if its node is down)."""
        for w in self.all:
            node = nodes[w.node]
            upto = node.sm.applied if node.up else w.last[0]
            want = self._committed.between(w.keys, w.start, upto)
            if w.events != want:
                missing = [x for x in want if x not in w.events]
                extra = [x for x in w.events if x not in want]
                raise InvariantViolation(
                    "a watch delivers the committed history",
                    f"{w.name} on node {w.node} ({','.join(w.keys)} from {w.start}, up to "
                    f"{upto}): missing {list(map(_fmt, missing))}, "
                    f"extra {list(map(_fmt, extra))}",
                )
        if self.all:
            events = sum(len(w.events) for w in self.all)
            self._tx.emit(f"{len(self.all)} watchers ({events} events): the committed history")


def _position(write: Write) -> Position:
    return write[:2]


def _fmt_position(position: Position) -> str:
    index, key = position
    return f"{key}@{index}" if key else f"index {index - 1}"


def _fmt(write: Write | None) -> str:
    if write is None:
        return "nothing"
    index, key, value = write
    return f"{key}={value or ''}@{index}"
