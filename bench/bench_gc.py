"""Garbage-collector pauses and raft-loop stalls of raftkvd under a sustained write load.

A three-node raftkvd cluster (the probe of ``bench/probe`` loaded in each process), its keyspace
preloaded, then PUTs at 64 connections for ``--seconds``. Each process's probe records every
collection's pause (``gc.callbacks``) during the load; with ``--census`` it also counts, by type,
the objects the collector tracks (what a full collection walks) halfway. Reported per node: the
number of collections per generation, p50/p99/max pause, the longest full collection; and,
where the runtime has them (``NodeStatistics``), the longest raft-loop iteration and its p99.

``--code DIR`` runs another checkout's code (e.g. ``git archive <commit> | tar -x -C DIR``) to
measure "before" on the same machine; run both within a few minutes and compare.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _servers import SHARED, RaftkvCluster
from _wrk import preload, wrk


def _quantile(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))] if xs else 0.0


def _bucket_quantile(counts: list[int], bounds: list[float], q: float) -> float:
    """An upper bound of the q-quantile of a histogram's counts (bucket resolution)."""
    total = sum(counts)
    running = 0
    for bound, n in zip([*bounds, float("inf")], counts, strict=True):
        running += n
        if total and running >= q * total:
            return bound
    return 0.0


def report_probe(probe: dict[str, object], role: str) -> None:
    window: dict[str, object] = probe.get("window") or {}  # type: ignore[assignment]
    pauses: list[list[float]] = window.get("gc_pauses") or probe["gc_pauses"]  # type: ignore[assignment]
    everything = sorted(p for gen in pauses for p in gen)
    full = sorted(pauses[2])
    counts = "/".join(str(len(g)) for g in pauses)
    ms = 1e3
    print(
        f"  {role:<8} pid {probe['pid']}: collections gen0/1/2 {counts}; pause p50 "
        f"{_quantile(everything, 0.5) * ms:.3f} ms, p99 {_quantile(everything, 0.99) * ms:.2f} ms,"
        f" max {max(everything, default=0) * ms:.1f} ms; full collections p50 "
        f"{(statistics.median(full) if full else 0) * ms:.1f} ms, max "
        f"{max(full, default=0) * ms:.1f} ms; in all {sum(everything):.2f} s"
    )
    after: list[dict[str, object]] = window.get("nodes_after") or []  # type: ignore[assignment]
    before: list[dict[str, object]] = window.get("nodes_before") or []  # type: ignore[assignment]
    for b, a in zip(before, after, strict=False):
        if "loop_stall_max" not in a or "loop_busy" not in a:
            continue
        busy = [y - x for x, y in zip(b["loop_busy"], a["loop_busy"], strict=True)]  # type: ignore[call-overload]
        bounds: list[float] = a["loop_busy_bounds"]  # type: ignore[assignment]
        print(
            f"           raft loop: longest iteration {a['loop_stall_max'] * ms:.1f} ms, "  # type: ignore[operator]
            f"p99 <= {_bucket_quantile(busy, bounds, 0.99) * ms:.1f} ms, p99.9 <= "
            f"{_bucket_quantile(busy, bounds, 0.999) * ms:.1f} ms (bucket bounds); snapshots "
            f"taken {a.get('snapshots_taken', 0) - b.get('snapshots_taken', 0)}"  # type: ignore[operator]
        )
    garbage: list[list[object]] = window.get("garbage") or []  # type: ignore[assignment]
    if garbage:
        total = sum(int(n) for _, n in garbage)  # type: ignore[call-overload]
        top = ", ".join(f"{name} {n}" for name, n in garbage[:12])
        print(f"           cyclic garbage in the window: {total} objects: {top}")
    for census in probe.get("censuses", []):  # type: ignore[union-attr]
        top = ", ".join(f"{name} {n}" for name, n in census["top"][:12])
        print(
            f"           at {census['at_s']} s: {census['tracked']} objects tracked "
            f"({census['frozen']} frozen, not walked): {top}"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench gc")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--keyspace", type=int, default=100_000)
    parser.add_argument("--conns", type=int, default=64)
    parser.add_argument("--code", type=Path, help="run this checkout's code instead")
    parser.add_argument(
        "--census", action="store_true", help="count tracked objects by type mid-load (a stall)"
    )
    parser.add_argument(
        "--garbage", action="store_true", help="count the cyclic garbage made in the window"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None or not SHARED.is_dir():
        print(f"bench gc needs wrk and {SHARED}; run setup_venv.sh there", file=sys.stderr)
        return 2
    if args.quick:
        args.seconds, args.keyspace = 4, 2000
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-gc-") as tmp:
        env = {
            "RAFTKV_PROBE_CENSUS_IN_WINDOW": str(args.seconds / 2 if args.census else 0),
            "RAFTKV_PROBE_GARBAGE": "1" if args.garbage else "0",
        }
        with RaftkvCluster(Path(tmp), code=args.code, env=env) as cluster:
            cluster.start_all()
            leader = cluster.leader()
            preload(
                cluster.url(leader),
                "raw",
                900,
                keyspace=args.keyspace,
                done=cluster.has_keys(leader, args.keyspace),
            )
            time.sleep(2)
            window = Path(tmp) / "probe" / "window"
            window.touch()
            time.sleep(0.2)  # the probes see the window open
            try:
                result = wrk(
                    cluster.url(leader),
                    "put",
                    "raw",
                    args.conns,
                    f"{args.seconds}s",
                    keyspace=args.keyspace,
                )
            finally:
                window.unlink()
                time.sleep(0.2)
            pids = {p.pid: i for i, p in cluster.procs.items()}
            cluster.stop_all()
            probes = cluster.probes()
    print(
        f"{args.conns} connections of PUTs for {args.seconds} s over {args.keyspace:,} keys: "
        f"{result['rps']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} "
        f"ms, p99.9 {result['p999_ms']:.2f} ms"
    )
    print("garbage collections and raft-loop stalls per process:")
    for probe in probes:
        node = pids.get(int(probe["pid"]))  # type: ignore[call-overload]
        report_probe(probe, "leader" if node == leader else f"node {node}")
    return 0
