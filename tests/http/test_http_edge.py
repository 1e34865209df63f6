"""Errors a client can cause at the HTTP edge answer the documented JSON shape and status, also
those the server answers before the app sees the request (a malformed request line, headers
over the limit): served by a real Hypercorn on loopback, configured as raftkvd configures it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from raftkv.kv import KVService
from raftkv_cli._app import create_app
from raftkv_cli._serve import hypercorn_config, serve_http


@pytest.fixture
async def server(kv_service: KVService) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        config = hypercorn_config("127.0.0.1", 0)
        stop = trio.Event()
        binds = await nursery.start(
            lambda task_status: serve_http(
                create_app(kv_service),
                config,
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        yield binds[0]
        stop.set()


async def _raw(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(request)
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some():
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


def _error(headers: dict[str, str], body: bytes) -> dict[str, str]:
    assert headers["content-type"] == "application/json"
    value = json.loads(body)
    assert set(value) == {"error", "detail"} and value["error"] and value["detail"]
    return value


async def test_a_malformed_request_line_is_400_json(server: str) -> None:
    status, headers, body = await _raw(server, b"NOT A REQUEST\r\n\r\n")
    assert status == 400
    assert _error(headers, body)["error"] == "bad request"


async def test_oversized_headers_are_431_json(server: str) -> None:
    request = b"GET /k HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
    status, headers, body = await _raw(server, request)
    assert status == 431
    assert _error(headers, body)["error"] == "request header fields too large"


async def test_the_empty_key_is_400_not_404(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        r = await client.put("/", content=b"v")
        assert r.status_code == 400 and r.json()["error"] == "invalid key"
        r = await client.get("/")
        assert r.status_code == 404 and r.json()["error"] == "not found"
        r = await client.put("/v1/kv/", content=b"v")
        assert r.status_code == 400 and r.json()["error"] == "invalid key"


async def test_an_invalid_percent_escape_is_400(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        for path in ("/a%zz", "/a%", "/v1/kv/a%4", "/v1/kv/%G0"):
            r = await client.put(path, content=b"v")
            assert r.status_code == 400, (path, r.text)
            assert r.json()["error"] == "invalid key", path
        r = await client.get("/v1/kv?prefix=%zz")
        assert r.status_code == 400 and r.json()["error"] == "bad query"
        r = await client.get("/v1/kv", params={"prefix": "%zz"})  # encoded: a literal %zz
        assert r.status_code == 200
