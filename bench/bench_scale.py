"""Scale: a three-node cluster loaded with ``--keys`` keys (16-byte keys, 100-byte values),
raftkvd and etcd in the same run, one after the other.

For each system: the time to load the keys (transactions of 128 puts from 4 threads,
``_bulk``), every member's resident memory before and after (RSS per key), the snapshot's size
and build time (raftkv: the newest snapshot, from /-/metrics; etcd: its database size), the
restart of a follower from its data directory (until it serves every key again), and a follower
replaced by an empty one (both systems alike, as a member that lost its data must be: removed,
and a new member added with an empty data directory; raftkv's catches up by a streamed
snapshot) while wrk PUTs at 8 connections to the leader:
the seconds until it holds every key, the PUTs' p99 meanwhile, and its peak RSS beside a caught-up
follower's. For raftkv also every node's longest raft-loop iteration and its garbage collector's
longest pause over the whole run (snapshots taken, sent and installed included).

A million keys take a while on a small machine (``--keys`` sets the count; the report says what
was measured). Everything binds to loopback and is stopped by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _bulk import bulk_load, count_keys, wait_for_count
from _servers import SHARED, EtcdCluster, RaftkvCluster, peak_rss_bytes, rss_bytes
from _wrk import wrk_until

MB = 1 << 20
_GAUGES = (
    "raftkv_snapshot_bytes",
    "raftkv_snapshot_build_seconds",
    "raftkv_snapshot_prepare_seconds",
    "raftkv_snapshot_restore_seconds",
    "raftkv_loop_stall_max_seconds",
    "raftkv_gc_max_pause_seconds",
    "raftkv_snapshots_taken_total",
)


def scrape(url: str) -> dict[str, float]:
    """The raftkv gauges of ``_GAUGES`` from a node's /-/metrics."""
    text = httpx.get(url + "/-/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in _GAUGES:
            out[name] = float(value)
    return out


def _catch_up_under_load(
    leader: str, api: str, count: Callable[[], int | None], keys: int, fig: dict[str, float]
) -> None:
    """PUTs at 8 connections to ``leader`` until ``count()`` (the returning member's keys)
    reaches ``keys``: how long that took, and the PUTs' figures meanwhile."""

    def caught_up() -> bool:
        n = count()
        return n is not None and n >= keys

    took, load = wrk_until(leader, "put", api, 8, caught_up, limit=900, keyspace=keys)
    fig["catch_up_s"] = took
    fig["put8_p99_ms_meanwhile"] = load["p99_ms"]
    fig["put8_rps_meanwhile"] = load["rps"]


def _rss_per_key(before: list[int], after: list[int], keys: int) -> float:
    return statistics.median((a - b) / keys for a, b in zip(after, before, strict=True))


def raftkv_load(c: RaftkvCluster, keys: int, fig: dict[str, float]) -> int:
    """Load the keys and wait for every node to hold them; the leader's id."""
    leader = c.leader()
    before = [rss_bytes(p.pid) for p in c.procs.values()]
    fig["load_s"] = bulk_load(c.url(leader), "raftkv", keys)
    for i in c.procs:
        wait_for_count(lambda i=i: count_keys(c.url(i), "raftkv"), keys, 600)
    # Let the snapshots the load set off finish before measuring memory.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(scrape(c.url(i)).get("raftkv_snapshot_bytes", 0) > 0 for i in c.procs):
            break
        time.sleep(1)
    time.sleep(3)
    after = [rss_bytes(p.pid) for p in c.procs.values()]
    fig["rss_mb"] = statistics.median(after) / MB
    fig["rss_per_key"] = _rss_per_key(before, after, keys)
    m = scrape(c.url(leader))
    fig["snapshot_mb"] = m.get("raftkv_snapshot_bytes", 0) / MB
    fig["snapshot_build_s"] = m.get("raftkv_snapshot_build_seconds", 0)
    fig["snapshots_taken_leader"] = m.get("raftkv_snapshots_taken_total", 0)
    return leader


def raftkv_follower_back(c: RaftkvCluster, leader: int, keys: int, fig: dict[str, float]) -> None:
    """Restart a follower; then replace it by an empty member and let that catch up under load."""
    follower = next(i for i in sorted(c.procs) if i != leader)
    other = next(i for i in sorted(c.procs) if i not in (leader, follower))
    c.stop(follower)
    began = time.monotonic()
    c.start(follower)
    wait_for_count(lambda: count_keys(c.url(follower), "raftkv"), keys, 600)
    fig["restart_s"] = time.monotonic() - began
    c.stop(follower)
    follower = c.replace(follower, leader)  # removed, and a new member added empty, as etcd's
    _catch_up_under_load(
        c.url(leader), "raw", lambda: count_keys(c.url(follower), "raftkv"), keys, fig
    )
    fig["catch_up_peak_rss_mb"] = peak_rss_bytes(c.procs[follower].pid) / MB
    fig["steady_follower_rss_mb"] = rss_bytes(c.procs[other].pid) / MB
    m = scrape(c.url(follower))
    fig["snapshot_prepare_s"] = m.get("raftkv_snapshot_prepare_seconds", 0)
    fig["snapshot_restore_s"] = m.get("raftkv_snapshot_restore_seconds", 0)
    stalls = [scrape(c.url(i)) for i in sorted(c.procs)]
    fig["loop_stall_max_ms"] = max(s.get("raftkv_loop_stall_max_seconds", 0) for s in stalls) * 1e3
    fig["gc_max_pause_ms"] = max(s.get("raftkv_gc_max_pause_seconds", 0) for s in stalls) * 1e3


def bench_raftkv(keys: int, workdir: Path, flags: list[str]) -> dict[str, float]:
    fig: dict[str, float] = {}
    with RaftkvCluster(workdir / "raftkv", extra=flags) as c:
        c.start_all()
        leader = raftkv_load(c, keys, fig)
        raftkv_follower_back(c, leader, keys, fig)
    return fig


def _etcd_db_mb(url: str) -> float:
    status = httpx.post(url + "/v3/maintenance/status", json={}, timeout=10).json()
    return int(status.get("dbSize", 0)) / MB


def bench_etcd(keys: int, workdir: Path) -> dict[str, float]:
    fig: dict[str, float] = {}
    with EtcdCluster(workdir / "etcd") as e:
        e.start_all()
        leader = e.leader_url()
        names = ("n1", "n2", "n3")
        before = [rss_bytes(e.pid_of(n) or 0) for n in names]
        fig["load_s"] = bulk_load(leader, "etcd", keys)
        for n in names:
            wait_for_count(lambda n=n: count_keys(e.url(n), "etcd"), keys, 600)
        time.sleep(3)
        after = [rss_bytes(e.pid_of(n) or 0) for n in names]
        fig["rss_mb"] = statistics.median(after) / MB
        fig["rss_per_key"] = _rss_per_key(before, after, keys)
        fig["snapshot_mb"] = _etcd_db_mb(leader)
        follower = e.follower_name()
        other = next(n for n in names if n != follower and e.url(n) != leader)
        e.stop_member(follower)
        began = time.monotonic()
        e.start_member(follower)
        wait_for_count(lambda: count_keys(e.url(follower), "etcd"), keys, 600)
        fig["restart_s"] = time.monotonic() - began
        e.replace_member(follower)
        _catch_up_under_load(leader, "v3", lambda: count_keys(e.url(follower), "etcd"), keys, fig)
        fig["catch_up_peak_rss_mb"] = peak_rss_bytes(e.pid_of(follower) or 0) / MB
        fig["steady_follower_rss_mb"] = rss_bytes(e.pid_of(other) or 0) / MB
    return fig


ROWS = (
    ("load_s", "load the keys, s", 1),
    ("rss_mb", "RSS per member after loading, MB (median)", 0),
    ("rss_per_key", "RSS per key, bytes (median of the members' growth)", 0),
    ("snapshot_mb", "snapshot size, MB (etcd: its database)", 1),
    ("snapshot_build_s", "newest snapshot: build and write, s", 2),
    ("restart_s", "restart a follower until it serves every key, s", 2),
    ("catch_up_s", "empty follower caught up, s", 1),
    ("put8_p99_ms_meanwhile", "PUT p99 at 8 connections meanwhile, ms", 1),
    ("put8_rps_meanwhile", "PUT req/s at 8 connections meanwhile", 0),
    ("catch_up_peak_rss_mb", "that follower's peak RSS, MB", 0),
    ("steady_follower_rss_mb", "a caught-up follower's RSS, MB", 0),
    ("snapshot_prepare_s", "received snapshot read beside the loop, s", 2),
    ("snapshot_restore_s", "received snapshot installed (in the loop), s", 3),
    ("loop_stall_max_ms", "longest raft-loop iteration of any node, ms", 1),
    ("gc_max_pause_ms", "longest garbage collection of any node, ms", 1),
)


def report(keys: int, ours: dict[str, float], theirs: dict[str, float]) -> None:
    print(f"\n{keys:,} keys (16-byte keys, 100-byte values), three members each")
    print("| figure | raftkv | etcd | raftkv/etcd |")
    print("|---|---:|---:|---:|")
    for field, label, digits in ROWS:
        a, b = ours.get(field), theirs.get(field)
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        fa = "-" if a is None else f"{a:,.{digits}f}"
        fb = "-" if b is None else f"{b:,.{digits}f}"
        print(f"| {label} | {fa} | {fb} | {ratio} |")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench scale")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument(
        "--quick", action="store_true", help="20 000 keys, snapshots every 100 entries"
    )
    parser.add_argument("--snapshot-count", type=int, help="raftkvd's (default: its own)")
    parser.add_argument("--catch-up-entries", type=int, help="raftkvd's (default: its own)")
    parser.add_argument("--systems", default="raftkv,etcd")
    parser.add_argument("--workdir", type=Path, help="kept (logs, probe files); default: temporary")
    args = parser.parse_args(argv)
    if args.quick:  # few entries: snapshots (and a compacted log) only with small settings
        args.keys, args.snapshot_count, args.catch_up_entries = 20_000, 100, 100
    flags = []
    if args.snapshot_count is not None:
        flags += ["--snapshot-count", str(args.snapshot_count)]
    if args.catch_up_entries is not None:
        flags += ["--catch-up-entries", str(args.catch_up_entries)]
    systems = args.systems.split(",")
    if "etcd" in systems and (shutil.which("etcd") is None or not SHARED.is_dir()):
        print(f"bench scale needs etcd, wrk and {SHARED}; run setup_venv.sh", file=sys.stderr)
        return 2
    ours: dict[str, float] = {}
    theirs: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        tmp = args.workdir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="raftkv-bench-scale-")
        )
        if "raftkv" in systems:
            ours = bench_raftkv(args.keys, Path(tmp), flags)
            print("raftkv:", ours, flush=True)
        if "etcd" in systems:
            theirs = bench_etcd(args.keys, Path(tmp))
            print("etcd:", theirs, flush=True)
    if flags:
        print("raftkvd " + " ".join(flags))
    report(args.keys, ours, theirs)
    return 0
