"""Every route and every error case of the HTTP API, in process (one node, memory network).

A refused request must leave no trace in the log: ``last_index`` does not move.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

import raftkv
from raftkv.kv import KVService, KVStateMachine, Limits
from raftkv.storage import MemoryStorage
from raftkv.transport import MemoryNetwork
from raftkv_cli._app import create_app

LIMITS = Limits(max_key_bytes=64, max_value_bytes=1000, max_list_limit=50)


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, raftkv.Node]]:
    net = MemoryNetwork()
    async with (
        net.open_transport(1) as transport,
        raftkv.open_node(
            raftkv.NodeConfig(id=1, tick_interval=0.01, client_url="http://testserver"),
            storage=MemoryStorage(),
            transport=transport,
            state_machine=(kv := KVStateMachine()),
            peers={1: "http://127.0.0.1:1"},
        ) as node,
    ):
        with trio.fail_after(5):
            await node.wait_status(
                lambda s: (
                    s.leader == 1 and s.members[0].client_url != "" and s.applied == s.last_index
                )
            )
        app = create_app(KVService(node, kv, LIMITS))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            yield client, node


def _unchanged(node: raftkv.Node):
    before = node.raft_position()[0], node.status().last_index

    def check() -> None:
        assert node.status().last_index == before[1], "a refused request reached the log"

    return check


async def test_seed_put_then_get(api) -> None:
    client, _ = api
    r = await client.put("/my-key", content=b"hello")
    assert r.status_code == 204
    assert int(r.headers["x-raft-index"]) > 0 and int(r.headers["x-raft-term"]) > 0
    r = await client.get("/my-key")
    assert (r.status_code, r.content) == (200, b"hello")
    assert r.headers["etag"] == '"1"'
    r = await client.get("/my-key", params={"consistency": "serializable"})
    assert r.content == b"hello"
    r = await client.head("/my-key")
    assert r.status_code == 200 and r.content == b""


async def test_missing_key_is_404_json(api) -> None:
    client, _ = api
    r = await client.get("/absent")
    assert r.status_code == 404
    assert r.json() == {"error": "key not found", "detail": "absent"}
    assert "x-raft-index" in r.headers


async def test_bad_consistency_is_400(api) -> None:
    client, _ = api
    r = await client.get("/k", params={"consistency": "sometimes"})
    assert r.status_code == 400 and r.json()["error"] == "bad consistency"


async def test_oversized_value_is_413_and_not_logged(api) -> None:
    client, node = api
    unchanged = _unchanged(node)
    r = await client.put("/big", content=b"x" * 1001)
    assert r.status_code == 413 and r.json()["error"] == "value too large"

    r = await client.put("/v1/kv/big", content=b"x" * 1001)
    assert r.status_code == 413 and r.json()["error"]
    unchanged()


async def test_oversized_key_is_400_and_not_logged(api) -> None:
    client, node = api
    unchanged = _unchanged(node)
    r = await client.put("/" + "k" * 65, content=b"v")
    assert r.status_code == 400 and r.json()["error"] == "invalid key"
    r = await client.put("/v1/kv/" + "k" * 65, content=b"v")
    assert r.status_code == 400
    unchanged()


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS"])
async def test_other_methods_on_a_key_are_405_with_allow(api, method: str) -> None:
    client, _ = api
    r = await client.request(method, "/my-key")
    assert r.status_code == 405
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "PUT"}
    assert r.json()["error"]


async def test_post_and_delete_need_a_numeric_member_id(api) -> None:
    client, node = api
    unchanged = _unchanged(node)
    for method in ("POST", "DELETE"):
        r = await client.request(method, "/my-key", content=b"http://127.0.0.1:9")
        assert r.status_code == 405 and "PUT" in r.headers["allow"]
    r = await client.post("/0", content=b"http://127.0.0.1:9")
    assert r.status_code == 400 and r.json()["error"] == "invalid member id"
    r = await client.post("/4", content=b"not a url")
    assert r.status_code == 400 and r.json()["error"] == "invalid peer url"
    r = await client.post("/1", content=b"http://127.0.0.1:9")
    assert r.status_code == 409
    r = await client.delete("/7")
    assert r.status_code == 404
    r = await client.delete("/1")  # the last voter
    assert r.status_code == 409 and "last voter" in r.json()["detail"]
    unchanged()


async def test_seed_member_add_and_remove(api) -> None:
    client, _ = api
    r = await client.post("/2", content=b"http://127.0.0.1:2")
    assert r.status_code == 200
    members = {m["id"]: m for m in r.json()["members"]}
    assert members[2]["peer_url"] == "http://127.0.0.1:2" and members[2]["learner"]
    r = await client.delete("/2")
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["members"]] == [1]


async def test_v1_kv_cas_and_create_only(api) -> None:
    client, node = api
    r = await client.put("/v1/kv/a", content=b"1", headers={"If-None-Match": "*"})
    assert r.status_code == 201
    etag = r.headers["etag"]
    r = await client.put("/v1/kv/a", content=b"2", headers={"If-None-Match": "*"})
    assert r.status_code == 412
    r = await client.put("/v1/kv/a", content=b"2", headers={"If-Match": '"999"'})
    assert r.status_code == 412 and r.json()["error"] == "precondition failed"
    r = await client.put("/v1/kv/a", content=b"2", headers={"If-Match": etag})
    assert r.status_code == 200
    r = await client.get("/v1/kv/a")
    assert r.content == b"2" and r.headers["etag"] != etag
    unchanged = _unchanged(node)
    for bad in ('W/"1"', "abc", '"-1"', '"0"'):
        r = await client.put("/v1/kv/a", content=b"3", headers={"If-Match": bad})
        assert r.status_code == 400, bad
    r = await client.put("/v1/kv/a", content=b"3", headers={"If-None-Match": '"1"'})
    assert r.status_code == 400
    r = await client.put("/v1/kv/a", content=b"3", headers={"If-Match": etag, "If-None-Match": "*"})
    assert r.status_code == 400
    unchanged()


async def test_v1_kv_delete(api) -> None:
    client, _ = api
    put = await client.put("/v1/kv/d", content=b"x")
    r = await client.delete("/v1/kv/d", headers={"If-Match": '"999"'})
    assert r.status_code == 412 and r.headers["etag"] == put.headers["etag"]
    r = await client.delete("/v1/kv/d")
    assert r.status_code == 200 and r.json()["deleted"] == 1
    r = await client.delete("/v1/kv/d")
    assert r.status_code == 404
    r = await client.get("/v1/kv/d")
    assert r.status_code == 404


async def test_v1_kv_list(api) -> None:
    client, _ = api
    for k in ("p/a", "p/b", "p/c", "q/a"):
        await client.put(f"/v1/kv/{k}", content=k.encode())
    r = await client.get("/v1/kv", params={"prefix": "p/", "limit": "2"})
    body = r.json()
    assert [kv["key"] for kv in body["kvs"]] == ["p/a", "p/b"] and body["more"]
    r = await client.get("/v1/kv", params={"prefix": "p/", "after": "p/b"})
    assert [kv["key"] for kv in r.json()["kvs"]] == ["p/c"]
    assert r.json()["kvs"][0]["value"] == "p/c"
    for bad in ("0", "-1", "x", "51"):
        r = await client.get("/v1/kv", params={"limit": bad})
        assert r.status_code == 400, bad


async def test_v1_members(api) -> None:
    client, node = api
    r = await client.get("/v1/members")
    assert r.json()["members"][0]["id"] == 1 and r.json()["leader"] == 1
    unchanged = _unchanged(node)
    for body in (b"not json", b"[]", b'{"id": "2", "peer_url": "http://h:1"}', b'{"id": 2}'):
        r = await client.post("/v1/members", content=body)
        assert r.status_code == 400, body
    r = await client.delete("/v1/members/abc")
    assert r.status_code == 400
    unchanged()
    r = await client.post("/v1/members", json={"id": 3, "peer_url": "http://127.0.0.1:3"})
    assert r.status_code == 200
    # Nobody listens at 3's address: it never catches up, and promoting it now is refused.
    r = await client.post("/v1/members/3/promote")
    assert r.status_code == 409 and "has not caught up" in r.json()["detail"]
    assert (await client.post("/v1/members/1/promote")).status_code == 409  # a voter already
    assert (await client.post("/v1/members/7/promote")).status_code == 404
    assert (await client.post("/v1/members/x/promote")).status_code == 400
    r = await client.delete("/v1/members/3")
    assert r.status_code == 200


async def test_v1_leader(api) -> None:
    client, _ = api
    r = await client.get("/v1/leader")
    assert r.json() == {"leader": 1}
    r = await client.post("/v1/leader", json={"id": 1})
    assert r.status_code == 200
    r = await client.post("/v1/leader", json={"id": 5})
    assert r.status_code == 404
    r = await client.post("/v1/leader", content=b"{")
    assert r.status_code == 400


async def test_operational_endpoints(api) -> None:
    client, _ = api
    assert (await client.get("/-/health")).json() == {"health": "ok"}
    assert (await client.get("/-/ready")).json() == {"ready": True}
    status = (await client.get("/-/status")).json()
    assert status["id"] == 1 and status["role"] == "leader" and status["leader"] == 1
    assert status["commit_index"] == status["applied_index"]
    await client.put("/m", content=b"x")
    text = (await client.get("/-/metrics")).text
    assert "raftkv_proposals_total" in text and "raftkv_fsync_seconds_bucket" in text
    for runtime in ("raftkv_loop_stall_max_seconds", "raftkv_snapshot_bytes"):
        assert runtime in text, runtime
    for histogram in ("raftkv_loop_iteration_seconds", "raftkv_gc_pause_seconds"):
        assert f"{histogram}_bucket" in text, histogram
    for standard in ("process_resident_memory_bytes", "python_info", "python_gc_collections"):
        assert standard in text, standard
    r = await client.get("/-/nothing")
    assert r.status_code == 404 and r.json()["error"]
    r = await client.get("/")
    assert r.status_code in (404, 405) and r.json()["error"]


async def test_a_body_without_length_is_refused_once_over_the_limit() -> None:
    from raftkv.kv import ValueTooLarge
    from raftkv_cli._request import read_body

    sent = 0

    async def receive() -> dict:
        nonlocal sent
        sent += 1
        return {"type": "http.request", "body": b"y" * 100, "more_body": True}

    with pytest.raises(ValueTooLarge):
        await read_body({"headers": []}, receive, 1000)
    assert sent == 11  # stopped at the first chunk past the limit, not at the end


async def test_a_body_is_read_until_its_declared_length() -> None:
    from raftkv_cli._request import read_body

    messages = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False},
    ]

    async def receive() -> dict:
        return messages.pop(0)

    scope = {"headers": [(b"content-length", b"4")]}
    assert await read_body(scope, receive, 1000) == b"abcd"
    assert len(messages) == 1  # the empty end-of-body message was not waited for
    messages[:] = [{"type": "http.request", "body": b"", "more_body": False}]
    assert await read_body({"headers": [(b"content-length", b"0")]}, receive, 1000) == b""


async def test_a_body_with_a_bad_declared_length_is_refused_before_reading() -> None:
    from raftkv_cli._http import HTTPError
    from raftkv_cli._request import read_body

    async def receive() -> dict:
        raise AssertionError("nothing is read")

    with pytest.raises(HTTPError) as info:
        await read_body({"headers": [(b"content-length", b"abc")]}, receive, 1000)
    assert info.value.status == 400
    assert b"bad content-length" in info.value.body()


async def test_keys_are_any_bytes_as_percent_encoded(api) -> None:
    client, _ = api
    r = await client.put("/v1/kv/%FF%FEbin", content=b"raw")
    assert r.status_code == 201
    r = await client.get("/%FF%FEbin")  # the seed route names the same key
    assert r.content == b"raw"
    r = await client.get("/v1/kv", params={"prefix": "\u00ff"})  # UTF-8 c3 bf: no match
    assert r.json()["kvs"] == []
    r = await client.get("/v1/kv?prefix=%FF")
    (kv,) = r.json()["kvs"]
    assert kv["key_b64"] == "//5iaW4=" and kv["value"] == "raw"


@pytest.mark.parametrize(
    ("method", "target", "unknown"),
    [
        ("PUT", "/v1/kv/t?ttl=5", "'ttl'"),
        ("PUT", "/t?ttl=5", "'ttl'"),
        ("GET", "/v1/kv/t?rev=1", "'rev'"),
        ("GET", "/t?consistncy=serializable", "'consistncy'"),
        ("DELETE", "/v1/kv/t?prefix=", "'prefix'"),
        ("GET", "/v1/kv?prefix=&limt=2", "'limt'"),
        ("DELETE", "/v1/kv?prefix=&prev_kv=true", "'prev_kv'"),
        ("POST", "/v1/txn?dry_run=true", "'dry_run'"),
        ("POST", "/v1/compact?physical=true", "'physical'"),
        ("GET", "/v1/watch?prefix=a&from=3", "'from'"),
        ("GET", "/v1/snapshot?full=1", "'full'"),
        ("POST", "/v1/leases?ttl=5", "'ttl'"),
        ("GET", "/v1/leases?limit=2", "'limit'"),
        ("GET", "/v1/members?verbose=1&all=1", "'all', 'verbose'"),
        ("POST", "/v1/leader?force=1", "'force'"),
        ("POST", "/4?learner=false", "'learner'"),
    ],
)
async def test_unknown_query_parameters_are_400_naming_them(
    api, method: str, target: str, unknown: str
) -> None:
    client, node = api
    before = node.status().commit
    r = await client.request(method, target, content=b"{}" if method == "POST" else b"v")
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "unknown parameter"
    assert f"takes no {unknown}" in body["detail"]
    assert node.status().commit == before  # refused before anything was proposed
    assert (await client.get("/v1/kv/t")).status_code == 404


async def test_known_parameters_still_work_and_probes_ignore_theirs(api) -> None:
    client, _ = api
    assert (await client.put("/v1/kv/t", content=b"v")).status_code == 201
    r = await client.get("/v1/kv?prefix=t&limit=1&consistency=serializable&after=")
    assert r.status_code == 200 and r.json()["kvs"][0]["key"] == "t"
    assert (await client.get("/v1/kv/t?revision=1&consistency=linearizable")).status_code == 200
    assert (await client.get("/-/health?probe=lb")).status_code == 200


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("If-Unmodified-Since", "unsupported header"),
        ("If-Modified-Since", "unsupported header"),
        ("If-Range", "unsupported header"),
        ("X-Raftkv-Ttl", "unknown header"),
        ("X-Raft-Lease", "unknown header"),
    ],
)
async def test_headers_that_look_like_options_are_400(api, name: str, error: str) -> None:
    client, _ = api
    r = await client.put("/v1/kv/t", content=b"v", headers={name: "5"})
    assert r.status_code == 400 and r.json()["error"] == error
    assert name.lower() in r.json()["detail"]
    assert (await client.get("/v1/kv/t")).status_code == 404
