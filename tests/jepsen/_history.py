"""The record of one run: every client operation, and the nemesis timeline.

An operation's outcome is ``ok`` (the answer says it happened), ``fail`` (it certainly did not:
a refusal such as 503, or a connection that was never made) or ``unknown`` (a timeout, a 504, a
connection lost after the request was sent: it may have happened). Times are seconds since the
run began (``time.monotonic``). Both lists are written as JSON lines.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from raftkv.testing import Op, OpKind

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


@dataclass(frozen=True)
class Call:
    """What a client asked, and when (an operation not yet completed)."""

    process: str  # the client (or nemesis probe) that issued it
    f: str  # write, read, sread (serializable read), add, list, slist, probe, member
    key: str
    value: str | None
    node: int  # the node the request was sent to
    invoke: float


@dataclass
class Operation:
    id: int
    process: str  # the client (or nemesis probe) that issued it
    f: str  # write, read, sread (serializable read), add, list, probe
    key: str
    value: str | None  # the value written, or the value read (None: absent)
    node: int  # the node the request was sent to
    invoke: float
    complete: float
    outcome: str  # OK, FAIL, UNKNOWN
    status: str  # HTTP status code, or the error's name
    index: int | None = None  # X-Raft-Index of the answer
    extra: list[str] | None = None  # a list's keys

    @property
    def latency(self) -> float:
        return self.complete - self.invoke


@dataclass
class Window:
    """One fault, from injection to heal; ``minority`` are the nodes cut from any quorum."""

    family: str
    name: str
    detail: str
    start: float
    end: float | None = None
    nodes: list[int] = field(default_factory=list)
    minority: list[int] = field(default_factory=list)
    minority_from: float | None = None  # when the minority was cut off, if not at start
    mechanism: str = ""
    recovered_after: float | None = None  # seconds from heal until a write was served again
    notes: list[str] = field(default_factory=list)


class History:
    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.ops: list[Operation] = []
        self.windows: list[Window] = []
        self.skipped: Counter[str] = Counter()  # faults that could not be injected here, why
        self._ids = itertools.count()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def begin(self, process: str, f: str, key: str, value: str | None, node: int) -> Call:
        """An operation invoked now; ``record`` completes it."""
        return Call(process, f, key, value, node, self.now())

    def record(
        self,
        call: Call,
        outcome: str,
        status: str,
        index: int | None = None,
        extra: list[str] | None = None,
    ) -> Operation:
        op = Operation(
            next(self._ids),
            call.process,
            call.f,
            call.key,
            call.value,
            call.node,
            call.invoke,
            self.now(),
            outcome,
            status,
            index,
            extra,
        )
        self.ops.append(op)
        return op

    def open_window(self, family: str, name: str, detail: str, **kw: object) -> Window:
        w = Window(family, name, detail, self.now(), **kw)  # type: ignore[arg-type]
        self.windows.append(w)
        return w

    def counts(self) -> Counter[str]:
        return Counter(f"{op.f}-{op.outcome}" for op in self.ops)

    def register_ops(self, keys: set[str] | None = None) -> list[Op]:
        """The register operations as the linearizability checker's ``Op`` (times in ns).

        Acknowledged writes complete; unknown writes stay open; failed writes leave the history
        (``check_failed_writes_unseen`` checks no read saw them); unanswered reads tell nothing.
        """
        out = []
        for op in self.ops:
            if op.f not in ("write", "read") or (keys is not None and op.key not in keys):
                continue
            kind = OpKind.WRITE if op.f == "write" else OpKind.READ
            if op.outcome == FAIL or (kind is OpKind.READ and op.outcome != OK):
                continue
            ret = int(op.complete * 1e9) if op.outcome == OK else None
            out.append(Op(op.id, kind, op.key, op.value, int(op.invoke * 1e9), ret))
        return out

    @classmethod
    def load(cls, directory: Path) -> History:
        """A run's history read back from its results directory (to check or plot it again)."""
        history = cls()
        with (directory / "history.jsonl").open() as f:
            history.ops = [Operation(**json.loads(line)) for line in f]
        with (directory / "nemesis.jsonl").open() as f:
            history.windows = [Window(**json.loads(line)) for line in f]
        history.t0 = time.monotonic() - max([op.complete for op in history.ops] or [0.0])
        return history

    def dump(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "history.jsonl").open("w") as f:
            for op in self.ops:
                f.write(json.dumps(asdict(op), separators=(",", ":")) + "\n")
        with (directory / "nemesis.jsonl").open("w") as f:
            for w in self.windows:
                f.write(json.dumps(asdict(w), separators=(",", ":")) + "\n")
