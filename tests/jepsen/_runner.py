"""One fault-suite run, start to finish: network, cluster, clients + nemesis, heal, checks, files.

``run_once(RunConfig(...))`` is what the tests call; it returns a ``RunResult`` whose
``problems`` are empty when every checker agrees. Whatever happens, the processes are ended by
their PIDs, the tmpfs mounts undone and the namespaces deleted before it returns or raises.

Results go to ``<results>/run-<n>-seed<seed>/``: ``history.jsonl`` (every operation),
``nemesis.jsonl`` (the fault windows), ``logs/raftkvd-<id>.log``, ``latency.png`` and
``summary.json``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import trio

from jepsen import _checks, _disk, _faults
from jepsen._client import open_http
from jepsen._cluster import Cluster, Timing
from jepsen._history import OK, History
from jepsen._nemesis import RECOVERY_BOUND, FaultFn, Nemesis
from jepsen._netns import Lab, open_lab
from jepsen._plot import latency_plot
from jepsen._workloads import DEFAULT_WORKLOADS, WORKLOADS, Ctx

ALL_FAMILIES = list(_faults.FAMILIES)
# Product bugs the suite has found and that are being fixed elsewhere: (problem prefix, bug).
# A run lists them apart (``RunResult.known``); tests/jepsen keeps an xfail case for each.
SUMMARIES: list[str] = []  # every run's summary line, for the session's closing report
RESULT_ROOTS: set[Path] = set()
KNOWN_BUGS: dict[str, str] = {}


@dataclass
class RunConfig:
    families: list[str]  # family names, or family:fault for one fault (see _faults.select)
    seconds: float
    seed: int
    results: Path
    tag: int = 0
    nodes: int = 5
    workloads: list[str] = field(default_factory=lambda: list(DEFAULT_WORKLOADS))
    register_clients: int = 5
    set_clients: int = 2
    watch_clients: int = 2  # each a writer and a watcher at a time
    lock_clients: int = 3
    timing: Timing = field(default_factory=Timing)
    max_ops: int = 200_000
    extra_flags: list[str] = field(default_factory=list)
    faults: dict[str, list[FaultFn]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.faults = _faults.select(self.families)
        unknown = set(self.workloads) - set(WORKLOADS)
        if unknown:
            raise ValueError(f"unknown workloads {sorted(unknown)}; known: {','.join(WORKLOADS)}")

    def clients(self, workload: str) -> int:
        return int(getattr(self, f"{workload}_clients"))

    def rerun(self) -> str:
        workloads = (
            "" if self.workloads == DEFAULT_WORKLOADS else f" --workload {','.join(self.workloads)}"
        )
        return (
            f"nox -s jepsen -- --nemesis {','.join(self.families)} --seconds "
            f"{self.seconds:g} --seed {self.seed} --runs 1{workloads}"
        )


@dataclass
class RunResult:
    config: RunConfig
    history: History
    problems: list[str]  # the checkers' findings, known bugs left out
    known: list[str]  # findings that are KNOWN_BUGS
    stats: dict[str, object]
    directory: Path

    def summary(self) -> str:
        verdict = "OK" if not self.problems else f"{len(self.problems)} PROBLEM(S)"
        if self.known:
            verdict += f" (+{len(self.known)} known bug findings)"
        s = self.stats
        return (
            f"jepsen run {self.config.tag} seed={self.config.seed} "
            f"nemesis={','.join(self.config.families)}: {verdict}; ops={s['ops']} "
            f"unknown={s['unknown']} faults={s['faults']} results={self.directory} "
            f"(rerun: {self.config.rerun()})"
        )


def run_once(config: RunConfig) -> RunResult:
    directory = config.results / f"run-{config.tag:03d}-seed{config.seed}"
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"rkvj{os.getpid()}_run{config.tag}_"))
    history = History()
    problems: list[str] = []
    try:
        with open_lab(config.tag) as lab:
            cluster = Cluster(
                lab,
                workdir,
                directory / "logs",
                size=config.nodes,
                timing=config.timing,
                extra_flags=_flags(config),
                sync_journal="kill" in config.faults,
                tmpfs="disk" in config.faults,
            )
            try:
                ctx = _drive(config, lab, cluster, history)
                problems = [*ctx.problems, *_check(config, ctx)]
                (directory / "capabilities.txt").write_text(lab.caps.describe() + "\n")
            finally:
                cluster.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    history.dump(directory)
    stats = statistics(history, config)
    known = [p for p in problems if any(p.startswith(k) for k in KNOWN_BUGS)]
    result = RunResult(
        config, history, [p for p in problems if p not in known], known, stats, directory
    )
    latency_plot(
        history,
        directory / "latency.png",
        f"seed {config.seed}, nemesis {','.join(config.families)}: "
        f"{stats['ops']} ops, {len(result.problems)} problems"
        + (f", {len(result.known)} known-bug findings" if result.known else ""),
    )
    SUMMARIES.append(result.summary())
    RESULT_ROOTS.add(config.results)
    (directory / "summary.json").write_text(
        json.dumps(
            {
                "summary": result.summary(),
                "problems": result.problems,
                "known": known,
                "stats": stats,
                "config": {**asdict(config), "results": str(config.results)},
            },
            indent=2,
            default=str,
        )
    )
    return result


def _flags(config: RunConfig) -> list[str]:
    flags = list(config.extra_flags)
    if {"watch", "lock"} & set(config.workloads):  # their final reads go back to revision 1
        flags += ["--auto-compaction-retention", "0"]
    if "disk" in config.faults:
        flags += ["--snapshot-count", str(_disk.SNAPSHOT_COUNT), "--catch-up-entries", "100"]
    return flags


def _drive(config: RunConfig, lab: Lab, cluster: Cluster, history: History) -> Ctx:
    cluster.start_all()
    cluster.leader(timeout=30)
    history.t0 = time.monotonic()
    rng = random.Random(config.seed)

    async def main() -> Ctx:
        ctx = Ctx(
            cluster,
            history,
            config.timing,
            trio.current_time() + config.seconds,
            config.max_ops,
            rng,
            workloads={name: WORKLOADS[name]() for name in config.workloads},
        )
        async with open_http(config.timing.request_timeout + 1.5) as http:
            nemesis = Nemesis(ctx, lab, config.faults, http)
            with trio.fail_after(config.seconds + 120):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(nemesis.run, random.Random(rng.random()))
                    for name, workload in ctx.workloads.items():
                        for p in range(config.clients(name)):
                            nursery.start_soon(workload.client, ctx, p, random.Random(rng.random()))
            heal_all(lab, cluster)
            await _settle(ctx, nemesis)
            for workload in ctx.workloads.values():
                await workload.final(ctx)
        return ctx

    return trio.run(main)


def heal_all(lab: Lab, cluster: Cluster) -> None:
    """The final heal: links, chaos, disks, paused and dead (not removed) nodes."""
    lab.heal()
    for node in cluster.members:
        node.signal(signal.SIGCONT)
        if cluster.data_roots:
            _disk.free(cluster.data_roots[node.id])
        if not node.alive():
            node.start()


async def _settle(ctx: Ctx, nemesis: Nemesis) -> None:
    """Bounded wait: a leader, and every member applied up to the leader's commit index."""
    with trio.move_on_after(60 * ctx.timing.election_timeout):
        while True:
            leader_id = await nemesis.leader(timeout=10 * ctx.timing.election_timeout)
            leader = ctx.cluster.nodes.get(leader_id)
            status = await nemesis.status(leader) if leader else None
            if status:
                commit = status["commit_index"]
                applied = [await nemesis.status(n) for n in ctx.cluster.members]
                if all(s and s["applied_index"] >= commit for s in applied):
                    return
            await trio.sleep(0.1)
    ctx.problems.append(
        f"the cluster did not settle after the final heal: {ctx.cluster.describe()}"
    )


def _check(config: RunConfig, ctx: Ctx) -> list[str]:
    problems = []
    for workload in ctx.workloads.values():
        problems += workload.check(ctx)
    problems += _checks.converged(ctx.final_values, ctx.history)
    problems += _checks.minority(ctx.history)
    problems += _checks.recovery(ctx.history, RECOVERY_BOUND * config.timing.election_timeout)
    return problems


def statistics(history: History, config: RunConfig) -> dict[str, object]:
    """The figures of one run (what docs/testing.md tabulates over a campaign)."""
    et = config.timing.election_timeout
    client_ops = [op for op in history.ops if op.process not in ("nemesis", "final")]
    majority_ops, majority_ok = 0, 0
    for w in history.windows:
        if not w.minority or w.end is None:
            continue
        for op in client_ops:
            if op.node not in w.minority and w.start + 2 * et <= op.invoke <= w.end:
                majority_ops += 1
                majority_ok += op.outcome == OK
    recoveries = [w.recovered_after for w in history.windows if w.recovered_after is not None]
    return {
        "ops": len(client_ops),
        "outcomes": dict(Counter(op.outcome for op in client_ops)),
        "by_kind": dict(sorted(history.counts().items())),
        "unknown": sum(op.outcome == "unknown" for op in client_ops),
        "faults": dict(Counter(w.name for w in history.windows)),
        "mechanisms": sorted({w.mechanism for w in history.windows}),
        "not_injected": dict(history.skipped),
        "majority_availability": round(majority_ok / majority_ops, 3) if majority_ops else None,
        "majority_ops": majority_ops,
        "recovery_max_s": round(max(recoveries), 3) if recoveries else None,
        "recovery_bound_s": RECOVERY_BOUND * et,
        "election_timeout_s": et,
    }
