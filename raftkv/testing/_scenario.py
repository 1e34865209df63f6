"""Scenario files: data-driven ``Cluster`` scripts (``tests/testdata/*.txt``).

The first command of a file creates the cluster; every other command is a ``Cluster`` operation
and prints what happened (Readys handled, messages delivered, client operations answered)::

    cluster n=3 seed=0 [<Config field>=<value> ...] [early_send=true] [invariants=false]
    tick [ids...] [n=1]            run [ids...] [n=1]        campaign <id>      elect <id>
    propose <id> <data>            read <id> [key]
    process-ready [ids...] [early|in-order] [crash]
    deliver [to...] [from=] [type=] [count=]                 deliver-at <pos>
    drop [to...] [from=] [type=] [count=]                    drop-at <pos>
    duplicate [to...] [from=] [type=] [count=]               duplicate-at <pos>
    stabilize [ids...] [quiet]     msgs
    partition <ids,...> <ids,...>  cut <from> <to>           isolate <id>       heal
    crash <id>                     restart <id>
    set-log <id> terms=(...) [term=] [vote=] [commit=]
    add-learner <id> [via=]        add-member <id> [via=]    promote <id> [via=]
    remove <id> [via=]             transfer <to> [via=]
    report-unreachable <id> <peer>                           report-snapshot <id> <peer> ok|fail
    compact <id> [keep=]           snapshot <id>             status [ids...]    progress <id>
    log <id>                       kv [ids...]               history
    check-history                  check-liveness [timeouts=]

``early_send=true`` handles every Ready in the runtime's order (``Ready.messages`` sent before
persisting); ``process-ready ... early`` / ``in-order`` chooses the order for one step, and
``crash`` crashes each node between the two halves of its Ready (early: messages sent, nothing
persisted; in order: persisted, nothing sent).

Local refusals (a down node, a bad argument) print ``error: ...``; invariant violations raise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from raftkv.core import RaftError, ReadOnlyOption

from ._cluster import Cluster
from ._datadriven import Arg, TestCase, parse_text, run_file

__all__ = ["ScenarioRunner", "replay", "run_scenario"]


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise ValueError(f"expected an integer, got {s!r}") from None


def _config_value(key: str, value: str) -> Any:
    if key == "read_only":
        return ReadOnlyOption(value)
    if value in ("true", "false"):
        return value == "true"
    return _int(value)


# Words that are flags, not node ids.
_FLAGS = {"quiet", "early", "in-order", "crash"}


class _Args:
    """Positional words and key=value options of one command."""

    def __init__(self, args: list[Arg]) -> None:
        self.raw = [str(a) for a in args]
        self.pos = [a.key for a in args if not a.values]
        self.opts = {a.key: a.values for a in args if a.values}

    def ints(self) -> list[int]:
        return [_int(p) for p in self.pos if p not in _FLAGS]

    def one(self) -> int:
        ints = self.ints()
        if len(ints) != 1:
            raise ValueError(f"expected one node id, got {self.pos}")
        return ints[0]

    def opt(self, key: str) -> int | None:
        v = self.opts.get(key)
        return None if v is None else _int(v[0])

    def filters(self) -> dict[str, Any]:
        kind = self.opts.get("type")
        return {
            "src": self.opt("from"),
            "kind": kind[0] if kind else None,
            "count": self.opt("count"),
        }


def _propose(c: Cluster, a: _Args) -> None:
    if len(a.raw) < 2:
        raise ValueError("propose <id> <data>")
    c.propose(_int(a.raw[0]), " ".join(a.raw[1:]).encode())


def _process_ready(c: Cluster, a: _Args) -> None:
    early = True if "early" in a.pos else (False if "in-order" in a.pos else None)
    c.process_ready(*a.ints(), early=early, crash="crash" in a.pos)


def _set_log(c: Cluster, a: _Args) -> None:
    terms = [_int(t) for t in a.opts.get("terms", ())]
    c.set_log(a.one(), terms, term=a.opt("term"), vote=a.opt("vote"), commit=a.opt("commit"))


_COMMANDS: dict[str, Callable[[Cluster, _Args], object]] = {
    "tick": lambda c, a: c.tick(*a.ints(), n=a.opt("n") or 1),
    "run": lambda c, a: c.run(*a.ints(), n=a.opt("n") or 1),
    "campaign": lambda c, a: c.campaign(a.one()),
    "elect": lambda c, a: c.elect(a.one()),
    "propose": _propose,
    "read": lambda c, a: c.read(_int(a.pos[0]), *a.pos[1:2]),
    "process-ready": _process_ready,
    "deliver": lambda c, a: c.deliver(*a.ints(), **a.filters()),
    "deliver-at": lambda c, a: c.deliver_at(a.one()),
    "drop": lambda c, a: c.drop(*a.ints(), **a.filters()),
    "drop-at": lambda c, a: c.drop_at(a.one()),
    "duplicate": lambda c, a: c.duplicate(*a.ints(), **a.filters()),
    "duplicate-at": lambda c, a: c.duplicate_at(a.one()),
    "stabilize": lambda c, a: c.stabilize(*a.ints(), quiet="quiet" in a.pos),
    "msgs": lambda c, a: c.msgs(),
    "partition": lambda c, a: c.partition(*[[_int(i) for i in g.split(",")] for g in a.pos]),
    "cut": lambda c, a: c.cut(*a.ints()),
    "isolate": lambda c, a: c.isolate(a.one()),
    "heal": lambda c, a: c.heal(),
    "crash": lambda c, a: c.crash(a.one()),
    "restart": lambda c, a: c.restart(a.one()),
    "set-log": _set_log,
    "add-learner": lambda c, a: c.add_learner(a.one(), via=a.opt("via")),
    "add-member": lambda c, a: c.add_member(a.one(), via=a.opt("via")),
    "promote": lambda c, a: c.promote(a.one(), via=a.opt("via")),
    "remove": lambda c, a: c.remove(a.one(), via=a.opt("via")),
    "transfer": lambda c, a: c.transfer(a.one(), via=a.opt("via")),
    "report-unreachable": lambda c, a: c.report_unreachable(*a.ints()),
    "report-snapshot": lambda c, a: c.report_snapshot(
        _int(a.pos[0]), _int(a.pos[1]), a.pos[2] == "ok"
    ),
    "compact": lambda c, a: c.compact(a.one(), keep=a.opt("keep") or 0),
    "snapshot": lambda c, a: c.snapshot(a.one()),
    "status": lambda c, a: c.status(*a.ints()),
    "progress": lambda c, a: c.progress(a.one()),
    "log": lambda c, a: c.log(a.one()),
    "kv": lambda c, a: c.kv(*a.ints()),
    "history": lambda c, a: c.show_history(),
    "check-history": lambda c, a: c.check_history(),
    "check-liveness": lambda c, a: c.check_liveness(a.opt("timeouts") or 10),
}


def _make_cluster(args: list[Arg]) -> Cluster:
    a = _Args(args)
    opts = dict(a.opts)
    n = _int(opts.pop("n", ("3",))[0])
    seed = _int(opts.pop("seed", ("0",))[0])
    invariants = opts.pop("invariants", ("true",))[0] == "true"
    early_send = opts.pop("early_send", ("false",))[0] == "true"
    config = {k: _config_value(k, v[0]) for k, v in opts.items()}
    return Cluster(n, seed=seed, early_send=early_send, check_invariants=invariants, **config)


class ScenarioRunner:
    """Runs scenario commands against one ``Cluster`` (created by the ``cluster`` command)."""

    def __init__(self) -> None:
        self.cluster: Cluster | None = None

    def run(self, cmd: str, args: list[Arg]) -> str:
        if cmd == "cluster":
            self.cluster = _make_cluster(args)
            return self.cluster.last_output
        if self.cluster is None:
            raise ValueError(f"{cmd}: the first command must be 'cluster'")
        handler = _COMMANDS.get(cmd)
        if handler is None:
            raise ValueError(f"unknown command {cmd!r}; known: {', '.join(sorted(_COMMANDS))}")
        c = self.cluster
        c.last_output = ""
        try:
            handler(c, _Args(args))
        except (ValueError, KeyError, IndexError, RaftError) as exc:
            out = c.last_output
            msg = f"error: {type(exc).__name__}: {exc}"
            return f"{out}\n{msg}" if out else msg
        return c.last_output

    def handle(self, case: TestCase) -> str:
        return self.run(case.cmd, case.args)


def run_scenario(path: Path, *, rewrite: bool | None = None) -> None:
    """Run one scenario file; compare its outputs, or rewrite them."""
    run_file(path, ScenarioRunner().handle, rewrite=rewrite)


def replay(script: str) -> Cluster:
    """Run a scenario text (e.g. ``Cluster.script_text()``) and return the resulting cluster."""
    runner = ScenarioRunner()
    cases, _ = parse_text(script)
    for case in cases:
        runner.handle(case)
    if runner.cluster is None:
        raise ValueError("the script creates no cluster")
    return runner.cluster
