"""A Jepsen-style run: real raftkvd processes, concurrent clients, a nemesis, a checked history.

Clients write unique values to a few registers and read them back, through any node, while the
nemesis kills nodes with SIGKILL (and restarts them), pauses them with SIGSTOP, and restarts
them gracefully. Every operation's invocation and completion time is recorded; a write whose
answer was lost (timeout, connection reset, 504) is an open "maybe" operation. At the end the
whole history must be linearizable per key, and every node must agree on every register.

This is the loopback variant, which needs no root; the fault suite (``test_faults.py``, network
namespaces, every nemesis family) is the full one. ``RAFTKV_JEPSEN_SECONDS`` sets the length
(default 12 s). Loopback only; every loop is bounded in time and count; every process is ended
by its PID.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from dataclasses import dataclass, field

import httpx
import trio

from e2e._procs import Cluster, wait_for
from raftkv.testing import Op, OpKind, check_linearizable

SECONDS = float(os.environ.get("RAFTKV_JEPSEN_SECONDS", "12"))
SEED = int(os.environ.get("RAFTKV_JEPSEN_SEED", "7"))
KEYS = ["r0", "r1", "r2"]
CLIENTS = 6
MAX_OPS = 20_000


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: OpKind, key: str, value: str | None, invoke: int, ret: int | None) -> None:
        self.ops.append(Op(next(self.ids), kind, key, value, invoke, ret))
        outcome = "open" if ret is None else "ok"
        name = f"{kind.value}-{outcome}"
        self.counts[name] = self.counts.get(name, 0) + 1


def _now() -> int:
    return time.monotonic_ns()


async def client(
    n: int, cluster: Cluster, history: History, deadline: float, rng: random.Random
) -> None:
    urls = [d.url for d in cluster.daemons.values()]
    async with httpx.AsyncClient(timeout=3.0) as http:
        for k in itertools.count():
            if trio.current_time() > deadline or len(history.ops) > MAX_OPS:
                return
            key = rng.choice(KEYS)
            url = f"{rng.choice(urls)}/{key}"
            if rng.random() < 0.5:
                value = f"c{n}-{k}"
                invoke = _now()
                try:
                    r = await http.put(url, content=value)
                except httpx.HTTPError:
                    history.add(OpKind.WRITE, key, value, invoke, None)  # may have applied
                    continue
                if r.status_code == 204:
                    history.add(OpKind.WRITE, key, value, invoke, _now())
                elif r.status_code == 504:
                    history.add(OpKind.WRITE, key, value, invoke, None)
                else:
                    # A certain refusal: the write never applies (checked: it must not show up).
                    assert r.status_code == 503, (r.status_code, r.text)
                    history.add(OpKind.WRITE, key, "refused:" + value, invoke, None)
            else:
                invoke = _now()
                try:
                    r = await http.get(url)
                except httpx.HTTPError:
                    continue  # a read without an answer tells nothing
                if r.status_code == 200:
                    history.add(OpKind.READ, key, r.text, invoke, _now())
                elif r.status_code == 404:
                    history.add(OpKind.READ, key, None, invoke, _now())
                else:
                    assert r.status_code in (503, 504), (r.status_code, r.text)


async def nemesis(cluster: Cluster, deadline: float, rng: random.Random, log: list[str]) -> None:
    """One fault at a time, each healed before the next, so a quorum comes back every round."""
    ids = sorted(cluster.daemons)
    while trio.current_time() < deadline - 2:
        await trio.sleep(rng.uniform(0.5, 1.5))
        victim = cluster.daemons[rng.choice(ids)]
        assert victim.proc is not None
        fault = rng.choice(["kill", "pause", "restart"])
        log.append(f"{fault} {victim.id}")
        if fault == "kill":
            victim.kill9()
            await trio.sleep(rng.uniform(0.3, 1.5))
            victim.start()
        elif fault == "pause":
            os.kill(victim.proc.pid, signal.SIGSTOP)
            await trio.sleep(rng.uniform(0.3, 1.5))
            os.kill(victim.proc.pid, signal.SIGCONT)
        else:
            await trio.to_thread.run_sync(victim.stop)
            victim.start()


def test_linearizable_under_kills_pauses_and_restarts(cluster_factory) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.start_all()
    cluster.wait_leader()
    history = History()
    faults: list[str] = []
    rng = random.Random(SEED)

    async def main() -> None:
        deadline = trio.current_time() + SECONDS
        async with trio.open_nursery() as nursery:
            nursery.start_soon(nemesis, cluster, deadline, random.Random(rng.random()), faults)
            for n in range(CLIENTS):
                nursery.start_soon(
                    client, n, cluster, history, deadline, random.Random(rng.random())
                )

    trio.run(main)
    # Heal: every node up; then read every register everywhere (linearizable reads).
    for d in cluster.daemons.values():
        if not d.alive():
            d.start()
    cluster.wait_leader(timeout=30)
    final: dict[int, dict[str, str | None]] = {}
    for d in cluster.daemons.values():
        values: dict[str, str | None] = {}
        for key in KEYS:
            invoke = _now()
            r = d.get(f"/{key}")
            assert r.status_code in (200, 404), r.text
            values[key] = r.text if r.status_code == 200 else None
            history.add(OpKind.READ, key, values[key], invoke, _now())
        final[d.id] = values
    summary = f"faults={faults} ops={history.counts}"
    assert len({tuple(sorted(v.items())) for v in final.values()}) == 1, (final, summary)
    assert history.counts.get("write-ok", 0) > 20, summary
    assert history.counts.get("read-ok", 0) > 20, summary
    assert faults, summary
    print(summary)
    check_linearizable(history.ops)
    # No node is left broken by the faults: each answers health checks.
    for d in cluster.daemons.values():
        wait_for(lambda d=d: d.get("/-/health").status_code == 200, what=f"node {d.id} healthy")
