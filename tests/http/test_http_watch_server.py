"""Watch streams on a real Hypercorn on loopback, configured as raftkvd's: events arrive as they
happen, a client that closes its connection frees its watcher, many streams share one node, a
reader too slow for its buffer gets an error event and no gap, and a stopping node ends its
streams cleanly."""

from __future__ import annotations

import httpx
import trio
from _nodes import Event, open_api, open_cluster, parse_events, serve

from raftkv.kv import Limits


async def _wait(predicate, what: str) -> None:
    with trio.fail_after(5):
        while not predicate():
            await trio.sleep(0.01)


async def _leave(lines) -> None:
    """Stop reading a stream before its end: by cancelling the pending read, which unwinds
    httpx's (and httpcore's) async generators, so none is left for the garbage collector."""
    with trio.CancelScope() as scope:
        scope.cancel()
        async for _ in lines:
            pass


async def _next(lines, kind: str | None = None) -> Event:
    """The next event (of ``kind``) from an ``aiter_lines()``."""
    with trio.fail_after(5):
        while True:
            block = []
            async for line in lines:
                if not line:
                    break
                block.append(line)
            (event,) = parse_events("\n".join(block) + "\n\n")
            if kind is None or event.event == kind:
                return event


async def test_events_arrive_as_they_happen_and_closing_frees_the_watcher() -> None:
    async with open_api() as api, serve(api) as url, httpx.AsyncClient(base_url=url) as client:
        async with client.stream("GET", "/v1/watch", params={"prefix": "k"}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"] == "text/event-stream"
            assert r.headers["transfer-encoding"] == "chunked"
            lines = r.aiter_lines()
            assert (await _next(lines)).event == "progress"
            for i in range(1, 4):
                await client.put(f"/v1/kv/k{i}", content=b"v")
                change = await _next(lines, "change")
                assert change.id == i
            assert api.service.watches.stats.open == 1
            await _leave(lines)
        await _wait(lambda: api.service.watches.stats.open == 0, "the watcher released")


async def test_many_streams_on_one_node() -> None:
    async with open_api() as api, serve(api) as url, httpx.AsyncClient(base_url=url) as client:
        results: list[list[int]] = []

        async def watch(task_status: trio.TaskStatus[None]) -> None:
            async with client.stream("GET", "/v1/watch", params={"start_revision": "1"}) as r:
                lines = r.aiter_lines()
                await _next(lines)
                task_status.started()
                results.append([(await _next(lines, "change")).id for _ in range(10)])
                await _leave(lines)

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                await nursery.start(watch)
            for i in range(10):
                await client.put(f"/v1/kv/k{i}", content=b"v")
        assert results == [list(range(1, 11))] * 20
        await _wait(lambda: api.service.watches.stats.open == 0, "every watcher released")


async def test_a_reader_too_slow_for_its_buffer_gets_an_error_event_and_no_gap() -> None:
    value = b"v" * 200_000  # enough to fill the socket buffers: the server's writes block
    async with (
        open_api(Limits(max_value_bytes=len(value)), watch_buffer=3) as api,
        serve(api) as url,
    ):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        socket = await trio.open_tcp_stream(host, int(port))
        async with socket:
            await socket.send_all(b"GET /v1/watch?prefix=k HTTP/1.1\r\nHost: x\r\n\r\n")
            async with httpx.AsyncClient(base_url=url) as client:
                with trio.fail_after(10):
                    while api.service.watches.stats.open == 0:
                        await trio.sleep(0.01)
                for i in range(40):
                    await client.put(f"/v1/kv/k{i}", content=value)
            assert api.service.watches.stats.fell_behind == 1
            data = b""
            with trio.fail_after(10):
                while not data.endswith(b"0\r\n\r\n"):  # the end of the chunked body
                    data += await socket.receive_some(1 << 20)
    body = _dechunk(data.partition(b"\r\n\r\n")[2])
    events = parse_events(body.decode())
    changes = [e.id for e in events if e.event == "change"]
    error = events[-1]
    assert error.event == "error" and error.data["error"] == "watcher fell behind"
    assert changes == list(range(1, error.data["resume_revision"]))  # no gap before it
    assert 1 <= len(changes) < 40


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size, _, rest = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return out
        out += rest[:n]
        data = rest[n + 2 :]


async def test_a_stopping_node_ends_its_streams_cleanly() -> None:
    async with open_api() as api, serve(api) as url, httpx.AsyncClient(base_url=url) as client:
        await client.put("/v1/kv/k", content=b"v")
        async with client.stream("GET", "/v1/watch", params={"start_revision": "1"}) as r:
            lines = r.aiter_lines()
            assert (await _next(lines, "change")).id == 1
            api.close()
            error = await _next(lines)
            rest = [line async for line in lines]  # the body ends properly
        assert error == Event(1, "error", {"error": "the node is stopping", "resume_revision": 2})
        assert rest == []


async def test_the_client_resumes_on_another_member_when_one_stops() -> None:
    from contextlib import AsyncExitStack

    from raftkv.client import AsyncClient

    async with open_cluster(3) as apis, AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serve(api)) for api in apis]
        seen: list[int] = []
        async with AsyncClient(urls) as client, client.watch(prefix="k", start_revision=1) as w:
            for i in range(10):
                if i == 5:
                    apis[0].close()  # node 1 stops serving watches: its stream ends
                await client.put(f"k{i}", str(i))
                seen.append((await anext(w)).revision)
            assert client.endpoints.urls[client.endpoints.preferred] != urls[0]
            # Leaving while a stream is open releases its watcher and leaves nothing behind.
        import gc

        gc.collect()
        await trio.sleep(0.05)
        assert seen == list(range(1, 11))
        for api in apis:
            await _wait(lambda api=api: api.service.watches.stats.open == 0, "released")
