"""``/v1/leases`` and ``PUT /v1/kv/<key>?lease=``: every route and every error, in process, on a
three-node cluster whose followers replay leader-only requests on the leader (as raftkvd's do),
with every node's lessor running. A refused request leaves no trace in the log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from _members import Member, open_members
from _nodes import open_cluster

from raftkv.transport import MemoryNetwork

MAX_INT = (1 << 63) - 1


def leader_of(members: list[Member]) -> Member:
    leader = members[0].node.status().leader
    return next(m for m in members if m.node.id == leader)


def follower_of(members: list[Member]) -> Member:
    leader = members[0].node.status().leader
    return next(m for m in members if m.node.id != leader)


@pytest.fixture
async def members() -> AsyncIterator[list[Member]]:
    async with open_members() as ms:
        yield ms


async def _grant(m: Member, ttl: int = 5, **extra: object) -> int:
    r = await m.http.post("/v1/leases", json={"ttl": ttl, **extra})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_grant_keepalive_status_list_revoke(members: list[Member]) -> None:
    leader, follower = leader_of(members), follower_of(members)
    r = await follower.http.post("/v1/leases", json={"ttl": 30})
    assert r.status_code == 201 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["ttl"] == 30 and 1 <= body["id"] <= MAX_INT
    lease = body["id"]
    r = await follower.http.put(f"/v1/kv/svc/a?lease={lease}", content=b"up")
    assert r.status_code == 201
    await leader.http.put(f"/v1/kv/svc/%FF?lease={lease}", content=b"up")
    for m in (leader, follower):  # the follower replays both on the leader
        r = await m.http.post(f"/v1/leases/{lease}/keepalive")
        assert (r.status_code, r.json()) == (200, {"id": lease, "ttl": 30})
        r = await m.http.get(f"/v1/leases/{lease}")
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["granted_ttl"] == 30 and 28 <= got["ttl"] <= 30
        assert got["keys"] == [{"key": "svc/a"}, {"key_b64": "c3ZjL/8="}]
        r = await m.http.get(f"/v1/leases/{lease}", params={"keys": "false"})
        assert set(r.json()) == {"id", "ttl", "granted_ttl"}
        r = await m.http.get("/v1/leases")
        assert r.json() == {"leases": [{"id": lease}]}
    r = await follower.http.delete(f"/v1/leases/{lease}")
    assert r.status_code == 200
    revoked = r.json()
    assert revoked["id"] == lease and revoked["deleted"] == 2 and revoked["revision"] >= 3
    r = await leader.http.get("/v1/kv/svc/a")
    assert r.status_code == 404
    assert (await leader.http.get("/v1/leases")).json() == {"leases": []}


async def test_a_chosen_id_and_one_that_is_taken(members: list[Member]) -> None:
    m = follower_of(members)
    assert await _grant(m, id=MAX_INT) == MAX_INT
    # (A taken id is found as the grant applies: the entry is in the log, and changes nothing.)
    r = await m.http.post("/v1/leases", json={"ttl": 5, "id": MAX_INT})
    assert r.status_code == 409 and r.json()["error"] == "lease exists"
    assert r.json()["id"] == MAX_INT


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"ttl": 0}, "bad ttl"),  # below the minimum
        ({"ttl": -3}, "bad ttl"),
        ({"ttl": 2.5}, "bad ttl"),
        ({"ttl": 10.0}, "bad ttl"),  # a JSON number that is not an integer
        ({"ttl": "10"}, "bad ttl"),
        ({"ttl": True}, "bad ttl"),
        ({"ttl": 9_000_000_001}, "bad ttl"),  # above the maximum
        ({"ttl": 5, "id": 0}, "invalid lease id"),
        ({"ttl": 5, "id": -1}, "invalid lease id"),
        ({"ttl": 5, "id": MAX_INT + 1}, "invalid lease id"),
        ({"ttl": 5, "id": "12"}, "invalid lease id"),
        ({"ttl": 5, "id": 1.0}, "invalid lease id"),
        ({"ttl": 5, "other": 1}, "bad body"),
        ({}, "bad body"),
        ([5], "bad body"),
    ],
)
async def test_bad_grants_are_400_and_not_logged(
    members: list[Member], body: object, error: str
) -> None:
    m = leader_of(members)
    unchanged = m.unchanged()
    r = await m.http.post("/v1/leases", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == error and r.json()["detail"]
    r = await m.http.post("/v1/leases", content=b"ttl=5")
    assert r.status_code == 400 and r.json()["error"] == "bad body"
    unchanged()


async def test_the_minimum_ttl_is_named(members: list[Member]) -> None:
    m = leader_of(members)
    minimum = m.service.leases.limits.min_ttl
    r = await m.http.post("/v1/leases", json={"ttl": minimum - 1})
    assert r.status_code == 400 and f"from {minimum}" in r.json()["detail"]
    assert (await m.http.post("/v1/leases", json={"ttl": minimum})).status_code == 201


@pytest.mark.parametrize("text", ["0", "-1", "abc", "1.5", str(MAX_INT + 1), "١٢", "%20"])
async def test_bad_ids_in_paths_are_400(members: list[Member], text: str) -> None:
    for m in members:
        unchanged = m.unchanged()
        for method, path in (
            ("POST", f"/v1/leases/{text}/keepalive"),
            ("GET", f"/v1/leases/{text}"),
            ("DELETE", f"/v1/leases/{text}"),
            ("PUT", f"/v1/kv/k?lease={text}"),
        ):
            r = await m.http.request(method, path, content=b"v" if method == "PUT" else None)
            assert r.status_code == 400, (m.node.id, method, path, r.text)
            assert r.json()["error"] == "invalid lease id"
        unchanged()


async def test_unknown_leases_are_404_and_not_logged(members: list[Member]) -> None:
    for m in members:
        unchanged = m.unchanged()
        for method, path in (
            ("POST", "/v1/leases/4242/keepalive"),
            ("GET", "/v1/leases/4242"),
            ("PUT", "/v1/kv/k?lease=4242"),
        ):
            r = await m.http.request(method, path, content=b"v" if method == "PUT" else None)
            assert r.status_code == 404, (m.node.id, method, path, r.text)
            assert r.json()["error"] == "lease not found" and r.json()["id"] == 4242
        unchanged()
        # A revocation is a proposal: the store finds the lease unknown as it applies it.
        r = await m.http.delete("/v1/leases/4242")
        assert r.status_code == 404 and r.json()["error"] == "lease not found"
    r = await members[0].http.get("/v1/kv/k")
    assert r.status_code == 404


async def test_a_put_without_the_lease_detaches_the_key(members: list[Member]) -> None:
    m = leader_of(members)
    lease = await _grant(m)
    await m.http.put(f"/v1/kv/k?lease={lease}", content=b"1")
    assert (await m.http.get(f"/v1/leases/{lease}")).json()["keys"] == [{"key": "k"}]
    await m.http.put("/v1/kv/k", content=b"2")
    assert (await m.http.get(f"/v1/leases/{lease}")).json()["keys"] == []
    await m.http.delete(f"/v1/leases/{lease}")
    r = await m.http.get("/v1/kv/k")
    assert (r.status_code, r.content) == (200, b"2")  # detached: it outlives the lease


async def test_an_expired_lease_takes_its_keys_and_refuses_attaching(
    members: list[Member],
) -> None:
    leader = leader_of(members)
    minimum = leader.service.leases.limits.min_ttl
    lease = await _grant(leader, minimum)
    await leader.http.put(f"/v1/kv/svc/x?lease={lease}", content=b"up")
    with trio.fail_after(minimum + 5):
        while any(m.service.store.lease(lease) is not None for m in members):
            await trio.sleep(0.05)
    for m in members:
        assert (await m.http.get("/v1/kv/svc/x")).status_code == 404
        unchanged = m.unchanged()
        r = await m.http.put(f"/v1/kv/svc/x?lease={lease}", content=b"again")
        assert r.status_code == 404 and r.json()["error"] == "lease not found"
        r = await m.http.post(f"/v1/leases/{lease}/keepalive")
        assert r.status_code == 404
        unchanged()
    assert sum(m.service.leases.stats.expired for m in members) == 1


async def test_keepalives_keep_a_lease_past_its_ttl(members: list[Member]) -> None:
    leader, follower = leader_of(members), follower_of(members)
    minimum = leader.service.leases.limits.min_ttl
    lease = await _grant(follower, minimum)
    started = trio.current_time()
    while trio.current_time() - started < 3 * minimum:
        r = await follower.http.post(f"/v1/leases/{lease}/keepalive")
        assert r.status_code == 200, r.text
        await trio.sleep(minimum / 3)
    assert leader.service.store.lease(lease) is not None


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/leases", "GET, POST"),
        ("DELETE", "/v1/leases", "GET, POST"),
        ("POST", "/v1/leases/7", "DELETE, GET"),
        ("PUT", "/v1/leases/7", "DELETE, GET"),
        ("GET", "/v1/leases/7/keepalive", "POST"),
        ("DELETE", "/v1/leases/7/keepalive", "POST"),
    ],
)
async def test_other_methods_are_405_with_allow(
    members: list[Member], method: str, path: str, allow: str
) -> None:
    m = follower_of(members)
    unchanged = m.unchanged()
    r = await m.http.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert r.json()["error"] == "method not allowed"
    unchanged()


@pytest.mark.parametrize("path", ["/v1/leases/", "/v1/leases/7/renew", "/v1/leases/7/keepalive/x"])
async def test_unknown_lease_paths_are_404(members: list[Member], path: str) -> None:
    r = await members[0].http.post(path)
    assert r.status_code == 404 and r.json()["error"]


async def test_leader_only_requests_are_503_where_they_cannot_be_replayed() -> None:
    """A follower without a way to the leader refuses for certain: a retry elsewhere helps."""
    async with open_cluster(3) as apis:
        leader = next(a for a in apis if a.node.status().leader == a.node.id)
        follower = next(a for a in apis if a is not leader)
        r = await leader.client.post("/v1/leases", json={"ttl": 30})
        lease = r.json()["id"]
        for method, path in (
            ("POST", f"/v1/leases/{lease}/keepalive"),
            ("GET", f"/v1/leases/{lease}"),
        ):
            r = await follower.client.request(method, path)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["error"] == "no leader"


async def test_lease_requests_without_a_leader_are_503() -> None:
    """Grants, revocations and linearizable lists on a node cut off from the leader are
    refused for certain (503: retry elsewhere), never answered 404 or 405 by the side that
    replays only the leader-only routes."""
    net = MemoryNetwork()
    async with open_cluster(3, net=net) as apis:
        leader = next(a for a in apis if a.node.status().leader == a.node.id)
        lease = (await leader.client.post("/v1/leases", json={"ttl": 30})).json()["id"]
        lone = next(a for a in apis if a is not leader)
        net.partition([lone.node.id], [a.node.id for a in apis if a is not lone])
        with trio.fail_after(10):
            await lone.node.wait_status(lambda s: s.leader is None)
        for method, path, body in (
            ("POST", "/v1/leases", {"ttl": 30}),
            ("DELETE", f"/v1/leases/{lease}", None),
            ("GET", "/v1/leases?consistency=linearizable", None),
        ):
            r = await lone.client.request(method, path, json=body)
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            assert r.json()["error"] in {"no leader", "dropped"}, r.text


async def test_lease_metrics(members: list[Member]) -> None:
    leader = leader_of(members)
    lease = await _grant(leader)
    await leader.http.post(f"/v1/leases/{lease}/keepalive")
    await leader.http.delete(f"/v1/leases/{lease}")
    text = (await leader.http.get("/-/metrics")).text
    for line in (
        "raftkv_leases 0.0",
        "raftkv_leases_granted_total 1.0",
        "raftkv_leases_revoked_total 1.0",
        "raftkv_leases_keepalives_total 1.0",
        "raftkv_leases_expired_total 0.0",
    ):
        assert line in text.splitlines(), line
