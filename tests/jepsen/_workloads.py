"""Workloads: what the clients do during a run, what they read at the end, and what must hold.

A workload has three parts, called by the runner in this order::

    async def client(self, ctx, process, rng)   # one client task; returns at ctx's deadline
    async def final(self, ctx)                   # after the final heal: read everything back
    def check(self, ctx) -> list[str]            # the problems found (empty: it holds)

Every request goes into ``ctx.history`` as an ``Operation`` (``_history``), so the checks read one
record and the plot shows every workload. Workloads are registered in ``WORKLOADS``; a run
takes the ones its ``RunConfig.workloads`` names (``--workload``), one instance each:

* ``register`` and ``set`` (here);
* ``watch`` (``_watchload``): watchers follow ``/v1/watch`` streams across failures beside
  writers on their prefix; every watcher's stream must equal the committed history of its prefix
  from its start revision (no gap, no repeat, same order), and every member must hold that same
  history;
* ``lock`` (``_lockload``): clients take a lock and write a register fenced by their token;
  observed through the store's history, no two tenures overlap and tokens never decrease, and
  every waiter gets the lock once the faults heal.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import httpx
import trio

from jepsen._client import Answer, open_http, pace, send
from jepsen._history import FAIL, OK, UNKNOWN, History

if TYPE_CHECKING:
    from jepsen._cluster import Cluster, Node, Timing

REGISTER_KEYS = [f"r{i}" for i in range(5)]
SET_PREFIX = "set/"


@dataclass
class Ctx:
    cluster: Cluster
    history: History
    timing: Timing
    deadline: float  # trio.current_time() at which clients stop
    max_ops: int
    rng: random.Random
    final_values: dict[int, dict[str, str | None]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    workloads: dict[str, Workload] = field(default_factory=dict)  # this run's, by name

    def done(self) -> bool:
        return trio.current_time() >= self.deadline or len(self.history.ops) >= self.max_ops

    def pick(self, rng: random.Random) -> Node:
        return rng.choice(self.cluster.members)

    @property
    def client_timeout(self) -> float:
        return self.timing.request_timeout + 1.5


class Workload(Protocol):
    name: str

    async def client(self, ctx: Ctx, process: int, rng: random.Random) -> None: ...

    async def final(self, ctx: Ctx) -> None: ...

    def check(self, ctx: Ctx) -> list[str]: ...


def read_value(answer: Answer) -> tuple[str, str | None]:
    """(outcome, value) of a GET: 200 a value, 404 absent, anything else no answer."""
    r = answer.response
    if r is not None and r.status_code == 200:
        return OK, r.text
    if r is not None and r.status_code == 404:
        return OK, None
    return (FAIL if answer.outcome == FAIL else UNKNOWN), None


async def put_register(
    ctx: Ctx, http: httpx.AsyncClient, process: str, node: Node, *, key: str, value: str
) -> str:
    call = ctx.history.begin(process, "write", key, value, node.id)
    a = await send(http, "PUT", f"{node.url}/{key}", content=value)
    ctx.history.record(call, a.outcome, a.status, a.index)
    await pace(a)
    return a.outcome


async def get_register(
    ctx: Ctx,
    http: httpx.AsyncClient,
    process: str,
    node: Node,
    *,
    key: str,
    serializable: bool = False,
) -> tuple[str, str | None]:
    call = ctx.history.begin(process, "sread" if serializable else "read", key, None, node.id)
    query = "?consistency=serializable" if serializable else ""
    a = await send(http, "GET", f"{node.url}/{key}{query}")
    outcome, value = read_value(a)
    ctx.history.record(replace(call, value=value), outcome, a.status, a.index)
    await pace(a)
    return outcome, value


class RegisterWorkload:
    """Unique writes and linearizable reads of a few registers, through any node."""

    name = "register"

    async def client(self, ctx: Ctx, process: int, rng: random.Random) -> None:
        async with open_http(ctx.client_timeout) as http:
            for k in range(1_000_000):
                if ctx.done():
                    return
                node, key = ctx.pick(rng), rng.choice(REGISTER_KEYS)
                if rng.random() < 0.5:
                    await put_register(
                        ctx, http, f"c{process}", node, key=key, value=f"c{process}-{k}"
                    )
                else:
                    await get_register(ctx, http, f"c{process}", node, key=key)

    async def final(self, ctx: Ctx) -> None:
        """Linearizable reads of every register on every node, then serializable ones."""
        async with open_http(ctx.client_timeout) as http:
            for node in ctx.cluster.members:
                for key in REGISTER_KEYS:
                    await get_register(ctx, http, "final", node, key=key)
                values = {}
                for key in REGISTER_KEYS:
                    outcome, value = await get_register(
                        ctx, http, "final", node, key=key, serializable=True
                    )
                    values[key] = value if outcome == OK else f"<no answer: {outcome}>"
                ctx.final_values.setdefault(node.id, {}).update(values)

    def check(self, ctx: Ctx) -> list[str]:
        from jepsen import _checks

        return [
            *_checks.linearizable(ctx.history),
            *_checks.failed_writes_unseen(ctx.history),
            *_checks.acked_writes_survive(ctx.history, REGISTER_KEYS),
        ]


class SetWorkload:
    """Each client adds unique keys under ``set/``; at the end every node lists the prefix."""

    name = "set"

    async def client(self, ctx: Ctx, process: int, rng: random.Random) -> None:
        async with open_http(ctx.client_timeout) as http:
            for k in range(1_000_000):
                if ctx.done():
                    return
                node, key = ctx.pick(rng), f"{SET_PREFIX}s{process}-{k}"
                call = ctx.history.begin(f"s{process}", "add", key, "1", node.id)
                a = await send(
                    http,
                    "PUT",
                    f"{node.url}/v1/kv/{key}",
                    content="1",
                    headers={"If-None-Match": "*"},
                )
                ctx.history.record(call, a.outcome, a.status, a.index)
                await pace(a)

    async def final(self, ctx: Ctx) -> None:
        async with open_http(ctx.client_timeout) as http:
            for node in ctx.cluster.members:
                for serializable in (False, True):
                    await list_prefix(ctx, http, node, serializable)

    def check(self, ctx: Ctx) -> list[str]:
        from jepsen import _checks

        return _checks.set_complete(ctx.history)


async def list_prefix(ctx: Ctx, http: httpx.AsyncClient, node: Node, serializable: bool) -> None:
    """GET /v1/kv?prefix=set/ page by page (bounded), recorded as one ``list`` operation."""
    keys: list[str] = []
    f = "slist" if serializable else "list"
    call = ctx.history.begin("final", f, SET_PREFIX, None, node.id)
    after, status, outcome = "", "", OK
    for _ in range(1000):
        query = f"prefix={SET_PREFIX}&limit=10000" + (f"&after={after}" if after else "")
        if serializable:
            query += "&consistency=serializable"
        a = await send(http, "GET", f"{node.url}/v1/kv?{query}")
        status = a.status
        if a.response is None or a.response.status_code != 200:
            outcome = FAIL if a.outcome == FAIL else UNKNOWN
            break
        body = a.response.json()
        keys += [kv["key"] for kv in body["kvs"]]
        if not body.get("more") or not body["kvs"]:
            break
        after = body["kvs"][-1]["key"]
    ctx.history.record(call, outcome, status, extra=keys)


def _watch() -> Workload:
    from jepsen._watchload import WatchWorkload

    return WatchWorkload()


def _lock() -> Workload:
    from jepsen._lockload import LockWorkload

    return LockWorkload()


WORKLOADS: dict[str, Callable[[], Workload]] = {
    "register": RegisterWorkload,
    "set": SetWorkload,
    "watch": _watch,
    "lock": _lock,
}
DEFAULT_WORKLOADS = ["register", "set"]
