"""Lease benchmark: raftkvd beside etcd in one run, three nodes each, on loopback.

1. ``--leases`` live leases (10 000), each renewed every third of ``--ttl``, for ``--seconds``:
   keep-alives/s served, errors, and the leader's CPU (% of one core) and resident memory.
2. Lock hand-over between two clients: the time from the holder's release to the waiter's
   acquisition, p50 and p99 (raftkv: the client's lock; etcd: ``/v3/lock/lock`` of its v3 JSON
   gateway).

Prints both and the ratios raftkv/etcd. ``--quick``: 200 leases, 3 s, 5 hand-overs.
``--no-etcd``: raftkv only. Every server runs on loopback and is stopped by its PID.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio
from _servers import RAFTKVD, SHARED, free_port, stop_pids, wait_http

from raftkv.client import AsyncClient

CONCURRENCY = 32


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _pool(n: int, job: Callable[[int], Awaitable[None]]) -> None:
    """Run ``job(i)`` for i in 0..n-1, CONCURRENCY at a time."""
    limiter = trio.CapacityLimiter(CONCURRENCY)

    async def one(i: int) -> None:
        async with limiter:
            await job(i)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)


async def _keepalive_load(
    http: httpx.AsyncClient, renew: Callable[[int], Awaitable[bool]], n: int, ttl: int, secs: float
) -> tuple[float, int]:
    """Every lease renewed every ttl/3 for ``secs``: (keep-alives/s done, errors)."""
    period = ttl / 3
    done = errors = 0
    deadline = trio.current_time() + secs
    started = trio.current_time()
    while trio.current_time() < deadline:
        round_start = trio.current_time()
        results: list[bool] = []

        async def job(i: int, results: list[bool] = results) -> None:
            if trio.current_time() < deadline:
                results.append(await renew(i))

        await _pool(n, job)
        done += sum(results)
        errors += len(results) - sum(results)
        await trio.sleep_until(min(round_start + period, deadline))
    return done / (trio.current_time() - started), errors


def _measure(pid: int, load: Callable[[], tuple[float, int]]) -> dict[str, float]:
    cpu0, t0 = _cpu_seconds(pid), time.monotonic()
    rate, errors = load()
    cpu = (_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
    return {"keepalives_per_s": rate, "errors": errors, "cpu_pct": cpu, "rss_mib": _rss_mib(pid)}


def _percentiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"p50_ms": 1000 * statistics.median(xs), "p99_ms": 1000 * xs[int(0.99 * (len(xs) - 1))]}


# -- raftkv ---------------------------------------------------------------------------------------


def _start_raftkv(workdir: Path) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    ports = [(free_port(), free_port()) for _ in range(3)]
    cluster = ",".join(f"http://127.0.0.1:{peer}" for peer, _ in ports)
    procs, urls = [], []
    for i, (_, client) in enumerate(ports, 1):
        log = (workdir / f"raftkvd-{i}.log").open("ab")
        procs.append(
            subprocess.Popen(
                [RAFTKVD, "--id", str(i), "--cluster", cluster, "--port", str(client)],
                cwd=workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        urls.append(f"http://127.0.0.1:{client}")
    for url in urls:
        wait_http(url + "/-/ready")
    return procs, urls


def _raftkv_leader(urls: list[str]) -> int:
    for _ in range(100):
        leader = httpx.get(urls[0] + "/-/status", timeout=2).json()["leader"]
        if leader:
            return int(leader) - 1
        time.sleep(0.1)
    raise RuntimeError("no raftkv leader")


async def _raftkv_bench(url: str, n: int, ttl: int, secs: float) -> tuple[float, int]:
    ids: list[int] = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:

        async def grant(i: int) -> None:
            ids.append((await http.post("/v1/leases", json={"ttl": ttl})).json()["id"])

        await _pool(n, grant)

        async def renew(i: int) -> bool:
            try:
                r = await http.post(f"/v1/leases/{ids[i]}/keepalive")
            except httpx.HTTPError:
                return False
            return r.status_code == 200

        return await _keepalive_load(http, renew, n, ttl, secs)


async def _raftkv_handover(urls: list[str], rounds: int) -> list[float]:
    out: list[float] = []
    async with AsyncClient(urls) as a, AsyncClient(urls) as b:
        for _ in range(rounds):
            out.append(await _raftkv_one_handover(a, b))
    return out


async def _raftkv_one_handover(a: AsyncClient, b: AsyncClient) -> float:
    """b waits for the lock a holds; seconds from a's release to b's acquisition."""
    times: dict[str, float] = {}

    async def wait_b() -> None:
        async with b.lock("bench/lock", ttl=10):
            times["acquired"] = trio.current_time()

    async with trio.open_nursery() as nursery, a.lock("bench/lock", ttl=10):
        nursery.start_soon(wait_b)
        while len((await a.get_prefix("bench/lock/")).kvs) < 2:
            await trio.sleep(0.01)
        await trio.sleep(0.1)  # b watches its predecessor
        times["released"] = trio.current_time()
    return times["acquired"] - times["released"]


# -- etcd -----------------------------------------------------------------------------------------

ETCD_URL = "http://127.0.0.1:2379"


def _etcd(command: str) -> str:
    script = str(SHARED / "etcd_cluster.sh")
    return subprocess.run(
        ["bash", script, *command.split()], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def _etcd_leader_pid() -> int:
    base = Path(os.environ.get("ETCD_BENCH_DIR", "/tmp/raftkv-bench/etcd"))
    ports = {"2379": "n1", "22379": "n2", "32379": "n3"}
    for line in _etcd("roles").splitlines():
        url, role = line.split()
        if role == "leader":
            return int((base / f"{ports[url.rsplit(':', 1)[1]]}.pid").read_text())
    raise RuntimeError("no etcd leader")


async def _etcd_bench(n: int, ttl: int, secs: float) -> tuple[float, int]:
    ids: list[str] = []
    async with httpx.AsyncClient(base_url=ETCD_URL, timeout=10) as http:

        async def grant(i: int) -> None:
            ids.append((await http.post("/v3/lease/grant", json={"TTL": ttl})).json()["ID"])

        await _pool(n, grant)

        async def renew(i: int) -> bool:
            try:
                r = await http.post("/v3/lease/keepalive", json={"ID": ids[i]})
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and "TTL" in r.json().get("result", {})

        return await _keepalive_load(http, renew, n, ttl, secs)


async def _etcd_handover(rounds: int) -> list[float]:
    out: list[float] = []
    async with httpx.AsyncClient(base_url=ETCD_URL, timeout=30) as http:
        for _ in range(rounds):
            out.append(await _etcd_one_handover(http))
    return out


async def _etcd_one_handover(http: httpx.AsyncClient) -> float:
    name = base64.b64encode(b"bench/lock").decode()
    leases = [
        str((await http.post("/v3/lease/grant", json={"TTL": 10})).json()["ID"]) for _ in range(2)
    ]
    a = (await http.post("/v3/lock/lock", json={"name": name, "lease": leases[0]})).json()
    times: dict[str, float] = {}

    async def wait_b() -> None:
        b = (await http.post("/v3/lock/lock", json={"name": name, "lease": leases[1]})).json()
        times["acquired"] = trio.current_time()
        await http.post("/v3/lock/unlock", json={"key": b["key"]})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_b)
        await trio.sleep(0.2)  # b waits on a
        times["released"] = trio.current_time()
        await http.post("/v3/lock/unlock", json={"key": a["key"]})
    for lease in leases:
        await http.post("/v3/lease/revoke", json={"ID": lease})
    return times["acquired"] - times["released"]


# -- the run --------------------------------------------------------------------------------------


def _report(name: str, load: dict[str, float], handover: list[float]) -> dict[str, float]:
    figures = {**load, **_percentiles(handover)}
    print(
        f"{name:<7} keep-alives/s={figures['keepalives_per_s']:.0f} errors={figures['errors']:.0f} "
        f"leader cpu={figures['cpu_pct']:.0f}% rss={figures['rss_mib']:.0f} MiB  "
        f"lock hand-over p50={figures['p50_ms']:.1f} ms p99={figures['p99_ms']:.1f} ms",
        flush=True,
    )
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench lease")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-etcd", action="store_true")
    parser.add_argument("--leases", type=int, default=10_000)
    parser.add_argument("--ttl", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--handovers", type=int, default=50)
    args = parser.parse_args(argv)
    if args.quick:
        args.leases, args.seconds, args.handovers = 200, 3.0, 5
    print(
        f"{args.leases} leases, TTL {args.ttl} s, renewed every {args.ttl / 3:g} s "
        f"(target {3 * args.leases / args.ttl:.0f} keep-alives/s) for {args.seconds:g} s"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-lease-") as tmp:
        procs, urls = _start_raftkv(Path(tmp))
        try:
            leader = _raftkv_leader(urls)
            load = _measure(
                procs[leader].pid,
                lambda: trio.run(_raftkv_bench, urls[leader], args.leases, args.ttl, args.seconds),
            )
            handover = trio.run(_raftkv_handover, urls, args.handovers)
            results["raftkv"] = _report("raftkv", load, handover)
        finally:
            stop_pids(procs)
    if args.no_etcd:
        return 0
    _etcd("start cluster")
    try:
        pid = _etcd_leader_pid()
        load = _measure(pid, lambda: trio.run(_etcd_bench, args.leases, args.ttl, args.seconds))
        results["etcd"] = _report("etcd", load, trio.run(_etcd_handover, args.handovers))
    finally:
        _etcd("stop")
    r, e = results["raftkv"], results["etcd"]
    print(
        f"ratios raftkv/etcd: keep-alives/s {r['keepalives_per_s'] / e['keepalives_per_s']:.2f}, "
        f"leader cpu {r['cpu_pct'] / max(e['cpu_pct'], 0.1):.2f}, "
        f"rss {r['rss_mib'] / max(e['rss_mib'], 0.1):.2f}, "
        f"hand-over p50 {r['p50_ms'] / e['p50_ms']:.2f}, p99 {r['p99_ms'] / e['p99_ms']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main(sys.argv[1:]))
