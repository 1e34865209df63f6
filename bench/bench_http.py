"""HTTP benchmark: raftkvd beside etcd and beside the HTTP stack's own ceiling, in one run.

Same machine, same load generator (wrk) and the same wrk scripts (``shared/bench``): a three-node
etcd cluster (v2 API and v3 JSON gateway), the Quart-Trio ceiling app (a dict behind the same
HTTP stack), and a three-node raftkvd cluster, each loaded with PUT and linearizable GET at 1, 8
and 64 connections. Prints a table of medians and the ratios raftkv/etcd and raftkv/ceiling.

Needs wrk, etcd (Debian etcd-server) and the shared bench scripts (``RAFTKV_SHARED_BENCH``,
default ``../shared/bench`` beside the checkout); ``shared/bench/setup_venv.sh`` installs them.
Every server runs on loopback and is stopped by its PID when the run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("RAFTKV_SHARED_BENCH", HERE.parent.parent / "shared" / "bench"))
RAFTKVD = str(Path(sys.executable).with_name("raftkvd"))


def _wrk(url: str, script: str, api: str, conns: int, duration: str) -> dict[str, float]:
    threads = min(conns, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}", "--timeout", "5s", "--latency"]
    cmd += ["-s", f"{script}.lua", url, "--", api]
    out = subprocess.run(
        cmd, cwd=SHARED, capture_output=True, text=True, timeout=600, check=False
    ).stdout
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {' '.join(cmd)}\n{out}")
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def _preload(url: str, api: str, seconds: int) -> None:
    subprocess.run(
        [
            "wrk",
            "-t1",
            "-c32",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            "preload.lua",
            url,
            "--",
            api,
        ],
        cwd=SHARED,
        capture_output=True,
        timeout=seconds + 60,
        check=False,
    )
    # Let the backlog the preload leaves (followers applying, snapshots) drain before measuring,
    # or the first measured second carries it.
    time.sleep(3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


class Matrix:
    def __init__(self, conns: list[int], duration: str, reps: int) -> None:
        self.conns = conns
        self.duration = duration
        self.reps = reps
        self.rows: list[dict[str, object]] = []

    def run(self, system: str, url: str, api: str, ops: list[str]) -> None:
        for op in ops:
            for c in self.conns:
                for rep in range(self.reps):
                    r = _wrk(url, op, api, c, self.duration)
                    errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
                    self.rows.append(
                        {
                            "system": system,
                            "api": api,
                            "op": op,
                            "conns": c,
                            "rep": rep,
                            **r,
                            "errors": errors,
                        }
                    )
                    print(
                        f"{system:<12} {api:<4} {op:<4} c={c:<3} rps={r['rps']:>8.0f} "
                        f"p50={r['p50_ms']:.2f}ms p99={r['p99_ms']:.2f}ms "
                        f"errors={errors:.0f} non2xx={r['non2xx']:.0f}",
                        flush=True,
                    )
                    time.sleep(1)

    def median(self, system: str, api: str, op: str, conns: int, field: str) -> float | None:
        xs = [
            float(r[field])  # type: ignore[arg-type]
            for r in self.rows
            if (r["system"], r["api"], r["op"], r["conns"]) == (system, api, op, conns)
        ]
        return statistics.median(xs) if xs else None


def bench_etcd(m: Matrix, preload_s: int) -> None:
    script = SHARED / "etcd_cluster.sh"
    subprocess.run([script, "start", "cluster"], check=True, capture_output=True)
    try:
        roles = subprocess.run([script, "roles"], capture_output=True, text=True, check=True).stdout
        leader = next(line.split()[0] for line in roles.splitlines() if "leader" in line)
        for api in ("v2", "v3"):
            _preload(leader, api, preload_s)
        m.run("etcd", leader, "v2", ["put", "get"])
        m.run("etcd", leader, "v3", ["put", "get"])
    finally:
        subprocess.run([script, "stop"], capture_output=True, check=False)


def bench_ceiling(m: Matrix, preload_s: int, python: str) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [python, str(SHARED / "quart_ceiling.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/ping")
        _preload(url, "raw", preload_s)
        m.run("ceiling", url, "raw", ["put", "get"])
    finally:
        _stop([proc])


def start_raftkv_cluster(workdir: Path) -> tuple[list[subprocess.Popen[bytes]], list[int], int]:
    """A three-node raftkvd cluster on loopback: (processes, client ports, leader id)."""
    peers = [_free_port() for _ in range(3)]
    clients = [_free_port() for _ in range(3)]
    cluster = ",".join(f"http://127.0.0.1:{p}" for p in peers)
    procs = []
    for i in range(3):
        log = (workdir / f"raftkvd-{i + 1}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    RAFTKVD,
                    "--id",
                    str(i + 1),
                    "--cluster",
                    cluster,
                    "--port",
                    str(clients[i]),
                    "--data-dir",
                    str(workdir / f"data-{i + 1}"),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    url = f"http://127.0.0.1:{clients[0]}"
    deadline = time.monotonic() + 30
    leader = None
    while leader is None and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            leader = httpx.get(url + "/-/status", timeout=1).json()["leader"]
        time.sleep(0.1)
    if leader is None:
        _stop(procs)
        raise RuntimeError("raftkvd cluster elected no leader")
    return procs, clients, leader


def bench_raftkv(m: Matrix, preload_s: int, workdir: Path) -> None:
    procs, clients, leader = start_raftkv_cluster(workdir)
    try:
        leader_url = f"http://127.0.0.1:{clients[leader - 1]}"
        _preload(leader_url, "raw", preload_s)
        m.run("raftkv", leader_url, "raw", ["put", "get"])
    finally:
        _stop(procs)


def report(m: Matrix) -> None:
    print()
    print(
        "| op | conns | raftkv req/s | p50 ms | p99 ms | etcd v2 | etcd v3 | ceiling "
        "| raftkv/etcd v2 | raftkv/etcd v3 | raftkv/ceiling |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for op in ("put", "get"):
        for c in m.conns:
            ours = m.median("raftkv", "raw", op, c, "rps")
            p50 = m.median("raftkv", "raw", op, c, "p50_ms")
            p99 = m.median("raftkv", "raw", op, c, "p99_ms")
            v2 = m.median("etcd", "v2", op, c, "rps")
            v3 = m.median("etcd", "v3", op, c, "rps")
            ceil = m.median("ceiling", "raw", op, c, "rps")

            def fmt(x: float | None, digits: int = 0) -> str:
                return "-" if x is None else f"{x:.{digits}f}"

            def ratio(a: float | None, b: float | None) -> str:
                return "-" if not a or not b else f"{a / b:.2f}"

            print(
                f"| {op} | {c} | {fmt(ours)} | {fmt(p50, 2)} | {fmt(p99, 2)} | {fmt(v2)} | "
                f"{fmt(v3)} | {fmt(ceil)} | {ratio(ours, v2)} | {ratio(ours, v3)} | "
                f"{ratio(ours, ceil)} |"
            )
    for c in m.conns[:1]:
        ours = m.median("raftkv", "raw", "put", c, "p50_ms")
        theirs = m.median("etcd", "v2", "put", c, "p50_ms")
        if ours and theirs:
            print(
                f"\nPUT p50 at {c} connection: raftkv {ours:.2f} ms, etcd v2 {theirs:.2f} ms "
                f"(ratio {ours / theirs:.2f})"
            )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench http")
    parser.add_argument("--quick", action="store_true", help="1 rep of 2 s, small keyspace")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--systems", default="etcd,ceiling,raftkv")
    parser.add_argument("--ceiling-python", default=os.environ.get("CEILING_PY", sys.executable))
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
        args.duration, args.reps = "2s", 1
    preload_s = 30 if args.quick else int(os.environ.get("PRELOAD_SECONDS", "120"))
    m = Matrix([1, 8, 64], args.duration, args.reps)
    systems = args.systems.split(",")
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-http-") as tmp:
        if "etcd" in systems:
            bench_etcd(m, preload_s)
        if "ceiling" in systems:
            bench_ceiling(m, preload_s, args.ceiling_python)
        if "raftkv" in systems:
            bench_raftkv(m, preload_s, Path(tmp))
    if args.csv:
        with args.csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(m.rows[0]))
            w.writeheader()
            w.writerows(m.rows)
    report(m)
    return 0
