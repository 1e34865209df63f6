"""Restart benchmark: how long a follower of a three-node raftkvd cluster holding ``--keys``
keys takes, from its start, until it serves every key, restarted ``--reps`` times in a row.

The keys are loaded once (as ``bench scale`` loads them: transactions of 128 puts from four
threads) into ``--data DIR``, which is kept: a later run with the same directory restarts the
same data at once, so that two versions of the code (``--code`` for another checkout's) are
timed on the same bytes. Besides the total, it prints when the restarted process first answered
``/-/status`` and its CPU seconds until it served every key.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx
from _bulk import bulk_load, count_keys, wait_for_count
from _servers import RaftkvCluster, cpu_seconds


def _cluster(data: Path, keys: int, code: Path | None) -> RaftkvCluster:
    """The cluster of ``data``, with the ports it was made with (they are in its membership)."""
    ports = data / "ports.json"
    c = RaftkvCluster(data, code=code)  # fresh ports, unless the directory has its own
    if ports.exists():
        saved = json.loads(ports.read_text())
        if saved["keys"] != keys:
            raise SystemExit(f"{data} holds {saved['keys']} keys, not {keys}: use another --data")
        c.peers, c.clients = saved["peers"], saved["clients"]
        return c
    c.start_all()
    print(f"loading {keys:,} keys into {data}", flush=True)
    took = bulk_load(c.leader_url(), "raftkv", keys)
    for i in c.procs:
        wait_for_count(lambda i=i: count_keys(c.url(i), "raftkv"), keys, 600)
    print(f"loaded in {took:.0f} s", flush=True)
    c.stop_all()
    ports.write_text(json.dumps({"keys": keys, "peers": c.peers, "clients": c.clients}))
    return c


def _first_status(url: str, began: float, timeout: float = 600) -> float:
    while time.monotonic() - began < timeout:
        try:
            httpx.get(url + "/-/status", timeout=1)
            return time.monotonic() - began
        except httpx.HTTPError:
            time.sleep(0.02)
    raise TimeoutError("the restarted node never answered")


def restart_once(c: RaftkvCluster, keys: int) -> dict[str, float]:
    leader = c.leader()
    follower = next(i for i in sorted(c.procs) if i != leader)
    c.stop(follower)
    began = time.monotonic()
    proc = c.start(follower)
    status = _first_status(c.url(follower), began)
    wait_for_count(lambda: count_keys(c.url(follower), "raftkv"), keys, 600, poll=0.02)
    return {
        "restart_s": time.monotonic() - began,
        "status_s": status,
        "cpu_s": cpu_seconds(proc.pid),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench restart")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--data", type=Path, required=True, help="kept between runs")
    parser.add_argument("--code", type=Path, help="another checkout's code to run")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    with _cluster(args.data, args.keys, args.code) as c:
        c.start_all()
        for i in c.procs:
            wait_for_count(lambda i=i: count_keys(c.url(i), "raftkv"), args.keys, 600)
        runs = []
        for rep in range(args.reps):
            r = restart_once(c, args.keys)
            print(f"restart {rep + 1}: " + " ".join(f"{k}={v:.2f}" for k, v in r.items()))
            runs.append(r)
    print(f"\n{args.keys:,} keys, a follower restarted {args.reps} times (medians)")
    print("| every key served, s | first /-/status, s | its CPU until then, s |")
    print("|---:|---:|---:|")
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"| {med['restart_s']:.2f} | {med['status_s']:.2f} | {med['cpu_s']:.2f} |")
    return 0
