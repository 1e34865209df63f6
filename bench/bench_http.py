"""HTTP benchmark: raftkvd beside etcd and beside the HTTP stack's own ceiling, interleaved.

Same machine, same load generator (wrk) and the same wrk scripts (``shared/bench``, through
``bench/wrk`` for p99.9): a three-node etcd cluster (v2 API and v3 JSON gateway), the Quart-Trio
ceiling app (a dict behind the same HTTP stack) and a three-node raftkvd cluster, all running at
once. Every (operation, connections) cell runs each system in turn, the order rotating every
repetition, so that the machine's drift falls on all of them alike. Besides requests/s and the
latency percentiles, each run measures the CPU time (user + system, /proc/<pid>/stat) of the
system's server processes: requests per CPU-second is what a request costs.

Prints medians and the ratios raftkv/etcd v3 (p99, p99.9, requests per CPU-second) and
raftkv/ceiling (throughput), and the p99 ratio of every repetition. Needs wrk, etcd (Debian
etcd-server) and the shared bench scripts (``RAFTKV_SHARED_BENCH``, default ``../shared/bench``);
``shared/bench/setup_venv.sh`` installs them. Everything binds to loopback and is stopped by PID.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _servers import (
    SHARED,
    EtcdCluster,
    RaftkvCluster,
    cpu_meter,
    free_port,
    stop_pids,
    wait_http,
)
from _wrk import preload, wrk

CONNS = (1, 8, 64)


@dataclass(frozen=True)
class Target:
    system: str  # raftkv, etcd, ceiling
    api: str  # raw, v2, v3
    url: str
    pids: Callable[[], list[int]]

    @property
    def name(self) -> str:
        return self.system if self.system != "etcd" else f"etcd {self.api}"


class Matrix:
    def __init__(self, conns: tuple[int, ...], duration: str, reps: int) -> None:
        self.conns = conns
        self.duration = duration
        self.reps = reps
        self.rows: list[dict[str, object]] = []

    def run(self, targets: list[Target], ops: tuple[str, ...]) -> None:
        for rep in range(self.reps):
            order = targets[rep % len(targets) :] + targets[: rep % len(targets)]
            for op in ops:
                for c in self.conns:
                    for t in order:
                        self._one(t, op, c, rep)

    def _one(self, t: Target, op: str, conns: int, rep: int) -> None:
        with cpu_meter(t.pids()) as cpu:
            r = wrk(t.url, op, t.api, conns, self.duration)
        r["cpu_s"] = cpu[0]
        r["per_cpu_s"] = r["requests"] / cpu[0] if cpu[0] > 0 else 0.0
        self.rows.append({"system": t.name, "op": op, "conns": conns, "rep": rep, **r})
        print(
            f"{t.name:<8} {op:<4} c={conns:<3} rps={r['rps']:>7.0f} p50={r['p50_ms']:.2f} "
            f"p99={r['p99_ms']:.2f} p999={r['p999_ms']:.2f} ms req/cpu-s={r['per_cpu_s']:.0f} "
            f"errors={r['errors']:.0f} non2xx={r['non2xx']:.0f}",
            flush=True,
        )
        time.sleep(1)

    def values(self, system: str, op: str, conns: int, field: str) -> list[float]:
        return [
            float(r[field])  # type: ignore[arg-type]
            for r in self.rows
            if (r["system"], r["op"], r["conns"]) == (system, op, conns)
        ]

    def median(self, system: str, op: str, conns: int, field: str) -> float | None:
        xs = self.values(system, op, conns, field)
        return statistics.median(xs) if xs else None


def _fmt(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}"


def report(m: Matrix) -> None:
    print("\nThroughput and cost (medians; req/cpu-s: requests per CPU-second of the servers)")
    print(
        "| op | conns | raftkv req/s | etcd v2 | etcd v3 | ceiling | raftkv/etcd v3 "
        "| raftkv/ceiling | raftkv req/cpu-s | etcd v3 req/cpu-s | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for op in ("put", "get"):
        for c in m.conns:
            rk, v2, v3, ceil = (m.median(s, op, c, "rps") for s in SYSTEMS)
            cost_r, cost_e = (m.median(s, op, c, "per_cpu_s") for s in ("raftkv", "etcd v3"))
            print(
                f"| {op} | {c} | {_fmt(rk)} | {_fmt(v2)} | {_fmt(v3)} | {_fmt(ceil)} | "
                f"{_ratio(rk, v3)} | {_ratio(rk, ceil)} | {_fmt(cost_r)} | {_fmt(cost_e)} | "
                f"{_ratio(cost_r, cost_e)} |"
            )
    print("\nLatency (medians, ms; ratios raftkv/etcd v3; the ceiling's p99 against etcd v3's)")
    print(
        "| op | conns | raftkv p50 | p99 | p99.9 | etcd v3 p50 | p99 | p99.9 "
        "| p99 ratio | p99.9 ratio | p99 ratio per rep | ceiling p99 | ceiling/etcd v3 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for op in ("put", "get"):
        for c in m.conns:
            ours = [m.median("raftkv", op, c, f) for f in ("p50_ms", "p99_ms", "p999_ms")]
            theirs = [m.median("etcd v3", op, c, f) for f in ("p50_ms", "p99_ms", "p999_ms")]
            per_rep = [
                _ratio(a, b)
                for a, b in zip(
                    m.values("raftkv", op, c, "p99_ms"),
                    m.values("etcd v3", op, c, "p99_ms"),
                    strict=False,
                )
            ]
            ceiling = m.median("ceiling", op, c, "p99_ms")
            print(
                f"| {op} | {c} | {' | '.join(_fmt(x, 2) for x in ours)} | "
                f"{' | '.join(_fmt(x, 2) for x in theirs)} | {_ratio(ours[1], theirs[1])} | "
                f"{_ratio(ours[2], theirs[2])} | {', '.join(per_rep)} | {_fmt(ceiling, 2)} | "
                f"{_ratio(ceiling, theirs[1])} |"
            )


SYSTEMS = ("raftkv", "etcd v2", "etcd v3", "ceiling")


def _start_ceiling(python: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [python, str(SHARED / "quart_ceiling.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/ping")
    return proc, url


def run(args: argparse.Namespace, workdir: Path) -> Matrix:
    systems = args.systems.split(",")
    m = Matrix(CONNS, args.duration, args.reps)
    targets: list[Target] = []
    procs: list[subprocess.Popen[bytes]] = []
    with EtcdCluster(workdir / "etcd") as etcd, RaftkvCluster(workdir) as raftkv:
        if "raftkv" in systems:
            raftkv.start_all()
            url = raftkv.leader_url()
            targets.append(Target("raftkv", "raw", url, raftkv.pids))
        if "etcd" in systems:
            etcd.start_all()
            leader = etcd.leader_url()
            targets += [Target("etcd", api, leader, etcd.pids) for api in ("v2", "v3")]
        try:
            if "ceiling" in systems:
                proc, url = _start_ceiling(args.ceiling_python)
                procs.append(proc)
                targets.append(Target("ceiling", "raw", url, lambda: [proc.pid]))
            for t in targets:
                print(f"preloading {t.name} at {t.url}", flush=True)
                preload(t.url, t.api, args.preload_seconds)
            # Let the backlog a preload leaves (followers applying, snapshots) drain first.
            time.sleep(3)
            m.run(targets, ("put", "get"))
        finally:
            stop_pids(procs)
    return m


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench http")
    parser.add_argument("--quick", action="store_true", help="1 rep of 2 s, small keyspace")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--systems", default="etcd,ceiling,raftkv")
    parser.add_argument("--ceiling-python", default=os.environ.get("CEILING_PY", sys.executable))
    parser.add_argument(
        "--preload-seconds", type=int, default=int(os.environ.get("PRELOAD_SECONDS", "120"))
    )
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args(argv)
    missing = [t for t in ("wrk",) if shutil.which(t) is None]
    if "etcd" in args.systems and shutil.which("etcd") is None:
        missing.append("etcd")
    if missing or not SHARED.is_dir():
        print(
            f"bench http needs {', '.join(missing) or 'shared/bench'}; run {SHARED}/setup_venv.sh",
            file=sys.stderr,
        )
        return 2
    if args.quick:
        os.environ.setdefault("KV_KEYSPACE", "2000")
        args.duration, args.reps, args.preload_seconds = "2s", 1, 30
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-http-") as tmp:
        m = run(args, Path(tmp))
    if args.csv and m.rows:
        with args.csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(m.rows[0]))
            w.writeheader()
            w.writerows(m.rows)
    report(m)
    return 0
