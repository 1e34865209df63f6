"""The watch workload: writers under ``watch/``, and watchers that follow it across failures.

Each client runs a writer (puts, sometimes deletes, of a few keys under ``watch/`` through any
node) and, one after another, watcher sessions: a session picks a prefix (``watch/`` or
``watch/a``), a start (now, or a revision already written) and a node, and follows
``GET /v1/watch`` as a careful client does: when a stream breaks, stalls past the server's
progress interval or ends with an ``error`` event, it opens the next one on another node at the
revision it needs next (the last one seen + 1, or the error's ``resume_revision``).

The watcher speaks raw HTTP (``Watcher``) rather than through ``AsyncClient.watch``: the client
drops a revision it has seen already, which would hide a server that repeats one; here every
event the server sends is recorded as it came (``f="event"``, ``index`` = its revision, ``extra``
= its events), as are the stream openings (``wopen``), progress (``wprogress``) and error events
(``werror``). The lock workload's client exercises ``AsyncClient.watch``.

``final`` reads, after the heal, the committed history of ``watch/`` on every member (a watch
from revision 1 up to the current revision, one ``whist`` operation each) and the store at a few
revisions (``GET /v1/kv?prefix=watch/&revision=N``, ``wlist``) so that the reference does not
rest on the watch path alone. ``_coordchecks.watch_history`` and ``watch_streams`` check them.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import trio

from jepsen._client import open_http, pace, send
from jepsen._history import FAIL, OK, UNKNOWN, Operation
from raftkv.client._watch import SSEDecoder

if TYPE_CHECKING:
    from jepsen._cluster import Node
    from jepsen._workloads import Ctx

WATCH_PREFIX = "watch/"
WATCH_KEYS = ["watch/a0", "watch/a1", "watch/b0", "watch/b1"]
WATCH_PREFIXES = ["watch/", "watch/a"]
# The server sends progress at least every 5 s; a stream silent for longer is dead.
STREAM_IDLE = 7.0
SPOT_READS = 12  # final reads of the store at a past revision


def event_text(event: dict) -> str:
    """One event of a ``change`` as the history keeps it: ``[type, key, value, create_rev]``."""
    kv = event.get("kv") or {}
    return json.dumps(
        [event.get("type"), kv.get("key"), kv.get("value"), kv.get("create_revision")],
        separators=(",", ":"),
    )


class Watcher:
    """One watch of ``prefix`` across as many streams (and nodes) as it takes.

    ``next_revision`` is the revision it needs next; every event any stream sent is kept in
    ``seen`` as ``(revision, events)`` in arrival order, a repeat included, and (when
    ``process`` is given) recorded in the history.
    """

    def __init__(self, ctx: Ctx, process: str | None, prefix: str, start: int | None) -> None:
        self.ctx, self.process, self.prefix = ctx, process, prefix
        self.next_revision = start
        self.upto = 0  # every revision up to this one was delivered, says the server
        self.seen: list[tuple[int, list[list]]] = []

    def _note(self, f: str, node: int, outcome: str, status: str, **kw: object) -> None:
        if self.process is not None:
            call = self.ctx.history.begin(self.process, f, self.prefix, None, node)
            self.ctx.history.record(call, outcome, status, **kw)  # type: ignore[arg-type]

    def url(self, node: Node) -> str:
        start = f"&start_revision={self.next_revision}" if self.next_revision else ""
        return f"{node.url}/v1/watch?prefix={self.prefix}{start}"

    async def stream(self, http: httpx.AsyncClient, node: Node) -> str:
        """Follow one stream from ``node`` until it ends; why it ended (``compacted``: for good).
        Cancel it to stop."""
        call = self.ctx.history.begin(self.process or "final", "wopen", self.prefix, None, node.id)
        timeout = httpx.Timeout(self.ctx.client_timeout, read=STREAM_IDLE)
        request = http.build_request("GET", self.url(node), timeout=timeout)
        try:
            response = await http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self._record_open(call, FAIL, type(exc).__name__)
            await trio.sleep(0.05)
            return type(exc).__name__
        except httpx.HTTPError as exc:
            self._record_open(call, UNKNOWN, type(exc).__name__)
            return type(exc).__name__
        async with _closing(response) as lines:
            status = str(response.status_code)
            self._record_open(call, OK if status == "200" else FAIL, status)
            if status != "200":
                await response.aread()
                await trio.sleep(0.05)
                return "compacted" if status == "410" else status
            return await self._follow(lines, node.id)

    def _record_open(self, call: object, outcome: str, status: str) -> None:
        if self.process is not None:
            self.ctx.history.record(call, outcome, status, self.next_revision)  # type: ignore[arg-type]

    async def _follow(self, lines: AsyncIterator[str], node: int) -> str:
        decoder = SSEDecoder()
        try:
            async for line in lines:
                event = decoder.feed(line)
                if event is None:
                    continue
                data = json.loads(event.data)
                if event.event == "change":
                    self._change(node, data)
                elif event.event == "progress":
                    self._advance(data["revision"])
                    self._note("wprogress", node, OK, "progress", index=data["revision"])
                elif event.event == "error":
                    self.next_revision = max(self.next_revision or 0, data["resume_revision"])
                    self._advance(data["resume_revision"] - 1)
                    self._note("werror", node, OK, str(data.get("error")), index=self.upto)
                    return "error event"
        except httpx.HTTPError as exc:
            self._note("wend", node, UNKNOWN, type(exc).__name__)
            return type(exc).__name__
        self._note("wend", node, OK, "closed")
        return "closed"

    def _change(self, node: int, data: dict) -> None:
        revision = data["revision"]
        events = [event_text(e) for e in data["events"]]
        self.seen.append((revision, [json.loads(e) for e in events]))
        self._note("event", node, OK, "change", index=revision, extra=events)
        self.next_revision = revision + 1  # as it came: a repeat is the server's to answer for
        self.upto = max(self.upto, revision)

    def _advance(self, revision: int) -> None:
        """Everything up to ``revision`` was delivered: the next stream starts after it."""
        self.upto = max(self.upto, revision)
        self.next_revision = max(self.next_revision or 0, revision + 1)

    async def follow(self, http: httpx.AsyncClient, rng: random.Random, until: float) -> None:
        """Streams from node after node until ``until`` (trio time), or compaction."""
        node = self.ctx.pick(rng)
        with trio.move_on_at(until):
            for _ in range(100_000):
                if await self.stream(http, node) == "compacted":
                    return
                node = rng.choice([n for n in self.ctx.cluster.members if n is not node] or [node])


@contextlib.asynccontextmanager
async def _closing(response: httpx.Response) -> AsyncIterator[AsyncIterator[str]]:
    """The response's lines; on the way out (cancelled too) the stream is unwound and closed.

    A read is cancelled to stop: that unwinds httpx's async generators, where closing the outer
    one would leave the inner ones to the garbage collector (as ``AsyncWatch`` does).
    """
    lines = response.aiter_lines()
    try:
        yield lines
    finally:
        with trio.CancelScope() as scope:
            scope.cancel()
            with contextlib.suppress(httpx.HTTPError):
                async for _ in lines:
                    pass
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await response.aclose()


class WatchWorkload:
    name = "watch"

    async def client(self, ctx: Ctx, process: int, rng: random.Random) -> None:
        async with open_http(ctx.client_timeout) as http, trio.open_nursery() as nursery:
            nursery.start_soon(self._writer, ctx, http, process, random.Random(rng.random()))
            await self._watchers(ctx, http, process, rng)

    async def _writer(
        self, ctx: Ctx, http: httpx.AsyncClient, process: int, rng: random.Random
    ) -> None:
        for k in range(1_000_000):
            if ctx.done():
                return
            node, key = ctx.pick(rng), rng.choice(WATCH_KEYS)
            if rng.random() < 0.85:
                value = f"w{process}-{k}"
                call = ctx.history.begin(f"ww{process}", "wput", key, value, node.id)
                a = await send(http, "PUT", f"{node.url}/v1/kv/{key}", content=value)
            else:
                call = ctx.history.begin(f"ww{process}", "wdel", key, None, node.id)
                a = await send(http, "DELETE", f"{node.url}/v1/kv/{key}")
            revision = a.response.json().get("revision") if a.outcome == OK else None
            ctx.history.record(call, a.outcome, a.status, revision)
            await pace(a)

    async def _watchers(
        self, ctx: Ctx, http: httpx.AsyncClient, process: int, rng: random.Random
    ) -> None:
        """Sessions one after another, each a few seconds long, until the deadline."""
        for j in range(10_000):
            if ctx.done():
                return
            # From now, at a revision that changed the prefix (the edge a resume must get
            # right), or at the one after it.
            written = [op.index for op in ctx.history.ops if op.f == "wput" and op.index]
            start = rng.choice(written) + rng.choice([0, 1]) if written else None
            if rng.random() < 0.3:
                start = None
            watcher = Watcher(ctx, f"wa{process}.{j}", rng.choice(WATCH_PREFIXES), start)
            lasts = rng.uniform(1, 4) * ctx.timing.election_timeout
            until = min(ctx.deadline, trio.current_time() + lasts)
            await watcher.follow(http, rng, until)

    async def final(self, ctx: Ctx) -> None:
        """The committed history of ``watch/`` on every member, and the store at a few
        revisions."""
        async with open_http(ctx.client_timeout) as http:
            end = await mark_end(ctx, http, WATCH_PREFIX)
            if end is None:
                return
            async with trio.open_nursery() as nursery:
                for node in ctx.cluster.members:
                    nursery.start_soon(read_history, ctx, http, node, WATCH_PREFIX, end)
            rng = random.Random(ctx.rng.random())
            for revision in sorted({end, *(rng.randint(1, end) for _ in range(SPOT_READS))}):
                await list_at(ctx, http, rng, revision)

    def check(self, ctx: Ctx) -> list[str]:
        from jepsen import _coordchecks

        return [
            *_coordchecks.watch_history(ctx.history, WATCH_PREFIX),
            *_coordchecks.watch_streams(ctx.history, WATCH_PREFIX),
        ]


async def mark_end(ctx: Ctx, http: httpx.AsyncClient, prefix: str) -> int | None:
    """Put ``<prefix>end`` (a ``wput`` of the final process) on the first member that takes it:
    its revision is where the final reads of the prefix's history stop, at a change they see."""
    for node in ctx.cluster.members * 3:
        call = ctx.history.begin("final", "wput", f"{prefix}end", "end", node.id)
        a = await send(http, "PUT", f"{node.url}/v1/kv/{prefix}end", content="end")
        revision = a.response.json().get("revision") if a.outcome == OK and a.response else None
        ctx.history.record(call, a.outcome, a.status, revision)
        if revision is not None:
            return int(revision)
        await trio.sleep(0.2)
    ctx.problems.append(f"{prefix}: no member took the final write after the heal")
    return None


async def read_history(
    ctx: Ctx, http: httpx.AsyncClient, node: Node, prefix: str, upto: int
) -> Operation:
    """A watch of ``prefix`` from revision 1 on ``node`` until it delivered ``upto``, recorded
    as one ``whist`` operation (``extra``: one ``[revision, events]`` line per revision);
    streams that break are resumed on the same node (bounded)."""
    watcher = Watcher(ctx, None, prefix, 1)
    call = ctx.history.begin("final", "whist", prefix, None, node.id)
    why = "timeout"
    with trio.move_on_after(30 + upto / 200):
        for _ in range(100):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_when_delivered, watcher, upto, nursery.cancel_scope)
                why = await watcher.stream(http, node)
                nursery.cancel_scope.cancel()
            if watcher.upto >= upto or why == "compacted":
                break
    done = watcher.upto >= upto
    lines = [json.dumps([r, e], separators=(",", ":")) for r, e in watcher.seen]
    return ctx.history.record(call, OK if done else UNKNOWN, "200" if done else why, upto, lines)


async def _cancel_when_delivered(watcher: Watcher, upto: int, scope: trio.CancelScope) -> None:
    while watcher.upto < upto:
        await trio.sleep(0.05)
    scope.cancel()


async def list_at(ctx: Ctx, http: httpx.AsyncClient, rng: random.Random, revision: int) -> None:
    """``GET /v1/kv?prefix=watch/&revision=N`` on some member, as a ``wlist`` operation whose
    ``extra`` is ``[key, value, create_revision]`` per key."""
    node = ctx.pick(rng)
    call = ctx.history.begin("final", "wlist", WATCH_PREFIX, None, node.id)
    a = await send(http, "GET", f"{node.url}/v1/kv?prefix={WATCH_PREFIX}&revision={revision}")
    kvs = []
    if a.outcome == OK and a.response is not None:
        kvs = [
            json.dumps([kv["key"], kv["value"], kv["create_revision"]], separators=(",", ":"))
            for kv in a.response.json()["kvs"]
        ]
    ctx.history.record(call, a.outcome, a.status, revision, kvs)
