"""Runtime benchmark: three in-process nodes over TCP on loopback with FileStorage.

Proposals applied per second with 1, 8 and 64 concurrent proposers, and p50/p99 latency of a
proposal (from ``propose`` to its result on the proposing node, the leader). Printed, never
asserted. ``--quick`` runs a tiny version (CI smoke).
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import trio

import raftkv
from raftkv.storage import open_file_storage
from raftkv.transport import open_tcp_transport


class CountingMachine:
    def __init__(self) -> None:
        self.count = 0

    def apply(self, index: int, command: bytes) -> object:
        self.count += 1
        return self.count

    def snapshot(self) -> bytes:
        return str(self.count).encode()

    def restore(self, data: bytes) -> None:
        self.count = int(data or b"0")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


async def _proposer(
    node: raftkv.Node, payload: bytes, deadline: float, latencies: list[float]
) -> None:
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        await node.propose(payload)
        latencies.append(time.perf_counter() - t0)


async def _run(concurrency: list[int], seconds: float, workdir: Path) -> list[dict[str, float]]:
    ports = _free_ports(3)
    peers = {i: f"http://127.0.0.1:{ports[i - 1]}" for i in (1, 2, 3)}
    rows = []
    async with AsyncExitStack() as stack:
        nodes = {}
        for i in (1, 2, 3):
            storage = await stack.enter_async_context(open_file_storage(workdir / f"n{i}"))
            transport = await stack.enter_async_context(
                open_tcp_transport(
                    i, "bench", peers, listen_host="127.0.0.1", listen_port=ports[i - 1]
                )
            )
            nodes[i] = await stack.enter_async_context(
                raftkv.open_node(
                    raftkv.NodeConfig(id=i, seed=i, tick_interval=0.05),
                    storage=storage,
                    transport=transport,
                    state_machine=CountingMachine(),
                    peers=peers,
                )
            )
        with trio.fail_after(10):
            leader = await nodes[1].wait_leader()
        node = nodes[leader]
        payload = random.Random(0).randbytes(100)
        for conns in concurrency:
            latencies: list[float] = []
            deadline = time.perf_counter() + seconds

            started = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(conns):
                    nursery.start_soon(_proposer, node, payload, deadline, latencies)
            elapsed = time.perf_counter() - started
            latencies.sort()
            rows.append(
                {
                    "proposers": conns,
                    "per_s": len(latencies) / elapsed,
                    "p50_ms": statistics.median(latencies) * 1e3,
                    "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
                    "batches": node.statistics().ready_batches,
                }
            )
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench node")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    seconds = 0.5 if args.quick else args.seconds
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-node-") as tmp:
        rows = trio.run(_run, [1, 8, 64], seconds, Path(tmp))
    print("3 nodes, TCP loopback, FileStorage, 100-byte proposals on the leader")
    print(f"{'proposers':>9} {'proposals/s':>12} {'p50 ms':>8} {'p99 ms':>8}")
    for r in rows:
        print(f"{r['proposers']:>9} {r['per_s']:>12.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    return 0
