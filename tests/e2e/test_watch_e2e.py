"""Watches on real raftkvd processes, across a leader killed with SIGKILL and restarted.

Three nodes; a watcher on each (the Python client, its own node's endpoint first, failing over
when it must); writers on every node (puts, deletes, transactions) while the leader is killed,
a new one elected, and the old one restarted. Every watcher must end with exactly the same
revisions and events; they must be every revision, in order, and hold every acknowledged write
at the revision it was acknowledged with (a write whose outcome is unknown may be there or not,
but the same in every watcher, and at most once); replayed, they give what a linearizable read
at the last revision finds. Then: a watch from a compacted revision answers 410, and a reader
of a raw stream too slow to keep up sees every event or an error event naming where to resume,
never a gap.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from raftkv.client import (
    AsyncClient,
    Compacted,
    KeyNotFound,
    OutcomeUnknown,
    RangeResponse,
    RetryPolicy,
    Unavailable,
    put,
    version,
)
from raftkv.kv import KeyValue, WatchBatch

from ._procs import Cluster, Daemon, wait_for

PATIENT = RetryPolicy(rounds=20, backoff=0.05, max_backoff=0.5)  # rides out an election
KEYS = [f"w/{i}" for i in range(8)]
RAFTKV = str(Path(sys.executable).with_name("raftkv"))


@dataclass
class Writes:
    """What the writers did: acknowledged writes by revision, and values of unknown fate."""

    acked: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)  # rev -> events
    unknown: set[str] = field(default_factory=set)  # values written with an unknown outcome
    count: int = 0

    def ack(self, revision: int, events: list[tuple[str, str, str]]) -> None:
        assert revision not in self.acked, f"two writes acknowledged at revision {revision}"
        self.acked[revision] = events
        self.count += 1


def summary(batch: WatchBatch) -> tuple[int, list[tuple[str, str, str]]]:
    return batch.revision, [(e.type, e.kv.key.decode(), e.kv.value.decode()) for e in batch.events]


async def writer(n: int, urls: list[str], writes: Writes, stop: trio.Event) -> None:
    async with AsyncClient(urls, retry=PATIENT, timeout=5) as client:
        i = 0
        while not stop.is_set():
            i += 1
            key, other = KEYS[(n * 3 + i) % len(KEYS)], KEYS[(n * 3 + i + 1) % len(KEYS)]
            a, b = f"{n}-{i}-a", f"{n}-{i}-b"
            try:
                match i % 5:
                    case 0:
                        deleted = await client.delete(key)
                        assert deleted.revision is not None
                        writes.ack(deleted.revision, [("delete", key, "")])
                    case 3:
                        r = await (
                            client.txn()
                            .compare(version(key) > 0)
                            .then(put(key, a), put(other, b))
                            .otherwise(put(key, b))
                            .commit()
                        )
                        done = [("put", key, a), ("put", other, b)] if r.succeeded else None
                        writes.ack(r.revision, done or [("put", key, b)])
                    case _:
                        response = await client.put(key, a)
                        assert response.revision is not None
                        writes.ack(response.revision, [("put", key, a)])
            except KeyNotFound:
                pass  # deleted nothing: no revision
            except OutcomeUnknown:
                writes.unknown |= {a, b}
            except Unavailable:
                pass  # certainly not applied


async def watcher(urls: list[str], seen: list[WatchBatch], served_by: set[str]) -> None:
    """Watch until cancelled; ``served_by``: the endpoints its batches came from."""
    async with (
        AsyncClient(urls, retry=PATIENT, timeout=5) as client,
        client.watch(prefix="w/", start_revision=1) as watch,
    ):
        async for batch in watch:
            seen.append(batch)
            served_by.add(client.endpoints.urls[client.endpoints.preferred])


async def slow_reader(url: str, out: list[bytes]) -> None:
    """A raw stream read a little at a time (a client too slow for the node, maybe)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(
            b"GET /v1/watch?prefix=w/&start_revision=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        while chunk := await stream.receive_some(512):
            out.append(chunk)
            await trio.sleep(0.002)


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    with trio.move_on_after(timeout):
        while not predicate():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def other_urls(c: Cluster, first: int) -> list[str]:
    return [c.daemons[first].url] + [d.url for i, d in c.daemons.items() if i != first]


async def test_every_watcher_sees_the_same_history_across_a_leader_crash(cluster_factory) -> None:
    started = time.monotonic()
    c = cluster_factory(3)
    c.start_all()
    leader = await trio.to_thread.run_sync(c.wait_leader)
    writes = Writes()
    seen: dict[int, list[WatchBatch]] = {i: [] for i in c.daemons}
    raw: list[bytes] = []
    with trio.fail_after(50):
        state, last = await run_the_cluster(c, leader, writes, seen, raw)

    histories = {i: [summary(b) for b in s if b.revision <= last] for i, s in seen.items()}
    reference = histories[1]
    for i, history in histories.items():
        assert history == reference, f"the watcher on node {i} saw another history"
    # Every revision (every write is under w/), in order, exactly once.
    assert [rev for rev, _ in reference] == list(range(1, last + 1))
    by_revision = dict(reference)
    for rev, events in writes.acked.items():
        assert by_revision[rev] == events, f"acknowledged write at {rev} missing or different"
    values = [value for _, events in reference for kind, _, value in events if kind == "put"]
    assert len(values) == len(set(values)), "a write applied twice"
    # Every revision is an acknowledged write, or a write of unknown outcome.
    for rev, events in reference:
        if rev not in writes.acked:
            assert {value for kind, _, value in events if kind == "put"} <= writes.unknown, rev
    # Replayed, the history is what a linearizable read at the last revision finds.
    replayed: dict[bytes, KeyValue] = {}
    for batch in seen[1]:
        for e in batch.events:
            if batch.revision <= last:
                if e.type == "put":
                    replayed[e.kv.key] = e.kv
                else:
                    replayed.pop(e.kv.key, None)
    assert {kv.key: kv for kv in state.kvs} == replayed

    check_the_slow_reader(b"".join(raw))
    with trio.fail_after(20):
        await check_compaction(c, last)
    assert time.monotonic() - started < 60


async def run_the_cluster(
    c: Cluster,
    leader: int,
    writes: Writes,
    seen: dict[int, list[WatchBatch]],
    raw: list[bytes],
) -> tuple[RangeResponse, int]:
    """Watch, write, kill the leader, restart it, write a marker, wait for every watcher to
    reach it; the state at the marker's revision, and that revision."""
    ids = sorted(c.daemons)
    final: list[int] = []  # the marker's revision, once written
    served_by: dict[int, set[str]] = {i: set() for i in ids}

    async with trio.open_nursery() as nursery:
        for i in ids:
            nursery.start_soon(watcher, other_urls(c, i), seen[i], served_by[i])
        nursery.start_soon(slow_reader, c.daemons[ids[-1]].url, raw)
        stop = trio.Event()
        async with trio.open_nursery() as writers:
            for i in ids:
                writers.start_soon(writer, i, other_urls(c, i), writes, stop)
            await until(lambda: writes.count >= 60, 15, "writes before the crash")
            c.daemons[leader].kill9()
            others = [i for i in ids if i != leader]
            await trio.to_thread.run_sync(lambda: c.wait_leader(others))
            await until(lambda: writes.count >= 120, 15, "writes without the old leader")
            c.daemons[leader].start()
            await trio.to_thread.run_sync(lambda: c.wait_leader(ids))
            await until(lambda: writes.count >= 180, 15, "writes after the restart")
            stop.set()
        async with AsyncClient(other_urls(c, leader), retry=PATIENT) as client:
            marker = await client.put("w/end", "end")
            assert marker.revision is not None
            final.append(marker.revision)
            writes.ack(marker.revision, [("put", "w/end", "end")])
            state = await client.get_prefix("w/", revision=marker.revision)
        await until(
            lambda: all(s and s[-1].revision >= final[0] for s in seen.values()), 15, "watchers"
        )
        nursery.cancel_scope.cancel()  # the watchers and the slow reader
    # The watcher of the node that was killed went on through another one.
    assert len(served_by[leader]) >= 2, served_by[leader]
    return state, final[0]


def check_the_slow_reader(data: bytes) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    text = _dechunk(body).decode()
    events = []
    for block in text.split("\n\n")[:-1]:  # the last one may be cut off
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], int(fields["id"]), json.loads(fields["data"])))
    changes = [rev for kind, rev, _ in events if kind == "change"]
    assert changes == list(range(1, len(changes) + 1)), "a gap in the slow reader's stream"
    errors = [data for kind, _, data in events if kind == "error"]
    if errors:  # it fell behind: told where to resume, right after what it got
        assert errors[0]["resume_revision"] == len(changes) + 1
    assert changes, "the slow reader saw nothing"


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        n = int(size, 16)
        if n == 0:
            break
        out += rest[:n]
        data = rest[n + 2 :]
    return out


async def check_compaction(c: Cluster, last: int) -> None:
    urls = [d.url for d in c.daemons.values()]
    async with AsyncClient(urls, retry=PATIENT) as client:
        point = last // 2
        assert (await client.compact(point)).compact_revision == point
        for url in urls:
            async with AsyncClient([url], retry=PATIENT) as one:
                with pytest.raises(Compacted) as info:
                    async with one.watch(prefix="w/", start_revision=point) as watch:
                        await anext(watch)
                assert info.value.compact_revision == point
                async with one.watch(prefix="w/", start_revision=point + 1) as watch:
                    assert (await anext(watch)).revision == point + 1


def _readline(proc: subprocess.Popen[bytes], timeout: float = 10) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"nothing printed in {timeout}s"
    return proc.stdout.readline()


def test_raftkv_watch_prints_as_it_happens_and_ctrl_c_ends_it(cluster_factory) -> None:
    c = cluster_factory(1)
    c.start_all()
    c.wait_leader()
    n1: Daemon = c.daemons[1]
    assert n1.put("/v1/kv/k", "1").status_code == 201
    with subprocess.Popen(
        [RAFTKV, "--endpoints", n1.url, "watch", "k", "--rev", "1", "-w", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            first = json.loads(_readline(proc))
            assert first["revision"] == 1
            assert n1.put("/v1/kv/k", "2").status_code == 200
            second = json.loads(_readline(proc))  # printed as it happens
            assert second["events"][0]["kv"]["value"] == "2"
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 130
            assert proc.stderr is not None
            assert b"Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    wait_for(lambda: httpx.get(n1.url + "/-/health").status_code == 200, 5, "health")
