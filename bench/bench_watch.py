"""Watch benchmark: many watchers on one node while it takes writes, raftkv beside etcd.

For each system (a three-node raftkvd cluster, a three-node etcd 3.4 through its v3 JSON
gateway's streaming watch, ``POST /v3/watch``), in one run on loopback:

1. ``--watchers`` watchers (default 1 000) on one member, each on its own prefix of the wrk
   scripts' keys (``key-`` + 10 digits: a hundred keys each), read as raw streams by one client
   process;
2. paced writes (``--rate`` per second for ``--seconds``) to those keys, each landing in exactly
   one watcher: the delivery latency of every event, from the write's answer to the event on
   its watcher (p50/p99; an event that beats the answer counts as 0);
3. PUT throughput with wrk at 64 connections, without and with the watchers connected (what
   the watchers cost: target at most 20 %).

Also, in process: the memory one retained revision of history costs the store.
Every server runs on loopback and is stopped by its PID; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import trio
from _servers import SHARED, RaftkvCluster, wait_http
from _wrk import wrk

KEYS = 100_000
PREFIX_DIGITS = 10  # "key-" + 10 of the 12 digits: 100 keys per prefix


def _prefix(i: int) -> str:
    return f"key-{i:0{PREFIX_DIGITS}d}"


def _key(n: int) -> str:
    return f"key-{n:012d}"


# -- watch clients (raw streams, one trio task each) ---------------------------------------------


async def _read_lines(
    stream: trio.SocketStream, request: bytes, ready: Callable[[], None]
) -> AsyncIterator[tuple[bytes, float]]:
    """Send ``request``, then every line of the answer with the time its bytes came."""
    async with stream:
        await stream.send_all(request)
        buf = b""
        announced = False
        while data := await stream.receive_some(65536):
            if not announced:
                announced = True
                ready()
            now = time.monotonic()
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line, now


async def _raftkv_watcher(
    port: int, prefix: str, seen: dict[int, float], ready: Callable[[], None]
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    request = f"GET /v1/watch?prefix={prefix} HTTP/1.1\r\nHost: b\r\n\r\n".encode()
    async for line, now in _read_lines(stream, request, ready):
        if line.startswith(b'data: {"revision"') and b'"events"' in line:
            seen.setdefault(json.loads(line[6:])["revision"], now)


async def _etcd_watcher(
    port: int, prefix: str, seen: dict[int, float], ready: Callable[[], None]
) -> None:
    start = prefix.encode()
    end = start[:-1] + bytes([start[-1] + 1])
    b64 = base64.b64encode
    watch = {"create_request": {"key": b64(start).decode(), "range_end": b64(end).decode()}}
    body = json.dumps(watch).encode()
    head = (
        "POST /v3/watch HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async for line, now in _read_lines(stream, head.encode() + body, ready):
        if b'"events"' not in line or b"{" not in line:
            continue
        with contextlib.suppress(ValueError):
            result = json.loads(line[line.index(b"{") :]).get("result", {})
            for event in result.get("events", []):
                seen.setdefault(int(event["kv"]["mod_revision"]), now)


# -- writers ---------------------------------------------------------------------------------------


async def _write_paced(
    put: Callable[[httpx.AsyncClient, str], object],
    base: str,
    args: argparse.Namespace,
    answered: dict[int, float],
) -> None:
    """``args.rate`` writes per second for ``args.seconds``, on 8 connections, cycling over the
    watched prefixes: each write lands in exactly one watcher's prefix."""
    rate, seconds, watched = args.rate, args.seconds, min(args.watchers, KEYS // 100)
    interval = 8 / rate
    deadline = trio.current_time() + seconds

    async def worker(w: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            n = w
            next_at = trio.current_time()
            while trio.current_time() < deadline:
                key = _key((n % watched) * 100 + (n // watched) % 100)
                rev = await put(http, key)  # type: ignore[misc]
                answered[int(rev)] = time.monotonic()  # type: ignore[arg-type]
                n += 8
                next_at += interval
                await trio.sleep_until(max(next_at, trio.current_time()))

    async with trio.open_nursery() as nursery:
        for w in range(8):
            nursery.start_soon(worker, w)


async def _raftkv_put(http: httpx.AsyncClient, key: str) -> int:
    r = await http.put(f"/v1/kv/{key}", content=b"x" * 100)
    r.raise_for_status()
    return int(r.json()["revision"])


async def _etcd_put(http: httpx.AsyncClient, key: str) -> int:
    body = {
        "key": base64.b64encode(key.encode()).decode(),
        "value": base64.b64encode(b"x" * 100).decode(),
    }
    r = await http.post("/v3/kv/put", json=body)
    r.raise_for_status()
    return int(r.json()["header"]["revision"])


# -- one system ------------------------------------------------------------------------------


async def _measure(
    system: str, node_port: int, write_base: str, args: argparse.Namespace
) -> dict[str, float]:
    watcher = _raftkv_watcher if system == "raftkv" else _etcd_watcher
    put = _raftkv_put if system == "raftkv" else _etcd_put
    seen: dict[int, float] = {}
    answered: dict[int, float] = {}
    opened = 0
    all_open = trio.Event()

    def ready() -> None:
        nonlocal opened
        opened += 1
        if opened == args.watchers:
            all_open.set()

    result: dict[str, float] = {}
    with trio.move_on_after(args.seconds * 6 + 120):
        async with trio.open_nursery() as nursery:
            for i in range(args.watchers):
                nursery.start_soon(watcher, node_port, _prefix(i % (KEYS // 100)), seen, ready)
            with trio.move_on_after(60):
                await all_open.wait()
            result["watchers_open"] = opened
            await _write_paced(put, write_base, args, answered)
            await trio.sleep(2)  # the last events
            lat = [max(0.0, seen[r] - t) for r, t in answered.items() if r in seen]
            result["delivered"] = len(lat) / max(1, len(answered))
            if lat:
                lat.sort()
                result["p50_ms"] = 1000 * statistics.median(lat)
                result["p99_ms"] = 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            api = "raw" if system == "raftkv" else "v3"
            if args.wrk_seconds:
                result["put64_with"] = await trio.to_thread.run_sync(
                    lambda: wrk(write_base, "put", api, 64, f"{args.wrk_seconds}s")["rps"]
                )
            nursery.cancel_scope.cancel()
    return result


def _put64(url: str, api: str, args: argparse.Namespace) -> dict[str, float]:
    if not args.wrk_seconds:
        return {}
    return {"put64_without": wrk(url, "put", api, 64, f"{args.wrk_seconds}s")["rps"]}


def bench_raftkv(args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    with RaftkvCluster(workdir) as cluster:
        cluster.start_all()
        leader = cluster.leader()
        leader_url = cluster.url(leader)
        without = _put64(leader_url, "raw", args)
        watched = cluster.clients[
            leader % 3
        ]  # the watchers on a follower, the writes to the leader
        result = trio.run(_measure, "raftkv", watched, leader_url, args)
        return {**result, **without}


def bench_etcd(args: argparse.Namespace) -> dict[str, float]:
    script = SHARED / "etcd_cluster.sh"
    subprocess.run([script, "start", "cluster"], check=True, capture_output=True)
    try:
        roles = subprocess.run([script, "roles"], capture_output=True, text=True, check=True).stdout
        leader = next(line.split()[0] for line in roles.splitlines() if "leader" in line)
        follower = next(line.split()[0] for line in roles.splitlines() if "leader" not in line)
        wait_http(leader + "/health")
        without = _put64(leader, "v3", args)
        port = int(follower.rsplit(":", 1)[1])
        result = trio.run(_measure, "etcd", port, leader, args)
        return {**result, **without}
    finally:
        subprocess.run([script, "stop"], capture_output=True, check=False)


def history_memory(revisions: int) -> float:
    """Bytes the store's history keeps per retained revision (100-byte values)."""
    from raftkv.kv import KVStateMachine, encode_put  # noqa: PLC0415 - only this figure

    store = KVStateMachine()
    index = 0
    for n in range(1000):
        index += 1
        store.apply(index, encode_put(_key(n).encode(), b"x" * 100))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for n in range(revisions):
        index += 1
        store.apply(index, encode_put(_key(n % 1000).encode(), b"y" * 100))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / revisions


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench watch")
    p.add_argument("--watchers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--wrk-seconds", type=int, default=8, help="0: no throughput (no wrk needed)")
    p.add_argument("--systems", default="raftkv,etcd")
    p.add_argument("--history-revisions", type=int, default=100_000)
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-watch-") as tmp:
        for system in args.systems.split(","):
            results[system] = (
                bench_raftkv(args, Path(tmp)) if system == "raftkv" else bench_etcd(args)
            )
    print(
        f"{'':24}"
        + "".join(f"{s:>12}" for s in results)
        + ("  raftkv/etcd" if len(results) == 2 else "")
    )
    for name in ("watchers_open", "delivered", "p50_ms", "p99_ms", "put64_without", "put64_with"):
        values = [results[s].get(name) for s in results]
        row = "".join(f"{v:12.2f}" if v is not None else f"{'-':>12}" for v in values)
        ratio = ""
        if len(values) == 2 and all(values) and values[1]:
            ratio = f"{values[0] / values[1]:12.2f}"  # type: ignore[operator]
        print(f"{name:24}{row}{ratio}")
    for s, r in results.items():
        if r.get("put64_without"):
            cost = 1 - r.get("put64_with", 0) / r["put64_without"]
            print(f"{s}: the watchers cost {100 * cost:.0f} % of PUT throughput at 64 connections")
    print(f"history: {history_memory(args.history_revisions):.0f} bytes per retained revision")
    return 0
