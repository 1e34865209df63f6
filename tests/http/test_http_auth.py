"""Authentication and permissions over HTTP: tokens, 401/403, the permission matrix over every
route and role, rate-limited logins, and the log checks what the edge let through."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from _nodes import Api, open_api, stream

from raftkv.kv import Perm

ROLES = ("anonymous", "nobody", "reader", "writer", "root")
PASSWORD = {"root": "r00t-pw", "nobody": "n0body-pw", "reader": "reader-pw", "writer": "writer-pw"}


async def _ok(api: Api, method: str, path: str, body: object = None) -> dict[str, object]:
    content = None if body is None else json.dumps(body).encode()
    r = await api.client.request(method, path, content=content)
    assert r.status_code < 300, (method, path, r.status_code, r.text)
    return r.json() if r.content else {}


async def set_up_auth(api: Api) -> dict[str, dict[str, str]]:
    """root, and users with no role, read on ``a/`` and write on ``a/``; auth on; each role's
    request headers."""
    for name, password in PASSWORD.items():
        await _ok(api, "POST", "/v1/auth/users", {"name": name, "password": password})
    for role, perm in (("root", None), ("reader", Perm.READ), ("writer", Perm.WRITE)):
        await _ok(api, "POST", "/v1/auth/roles", {"name": role})
        if perm is not None:
            grant = {"perm": perm.name.lower(), "key": "a/", "prefix": True}
            await _ok(api, "POST", f"/v1/auth/roles/{role}/grant", grant)
        await _ok(api, "PUT", f"/v1/auth/users/{role}/roles/{role}")
    await _ok(api, "POST", "/v1/auth/enable")
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    for name, password in PASSWORD.items():
        r = await api.client.post("/v1/auth/token", json={"user": name, "password": password})
        assert r.status_code == 200, r.text
        headers[name] = {"authorization": f"Bearer {r.json()['token']}"}
    return headers


@dataclass
class Secured:
    api: Api
    headers: dict[str, dict[str, str]]

    async def request(self, role: str, method: str, path: str, body: object = None) -> int:
        content = None if body is None else json.dumps(body).encode()
        r = await self.api.client.request(method, path, content=content, headers=self.headers[role])
        if r.status_code in (401, 403):
            assert r.headers["content-type"] == "application/json"
            assert set(r.json()) == {"error", "detail"}
        if r.status_code == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")
        return r.status_code


@pytest.fixture
async def secured() -> AsyncIterator[Secured]:
    async with open_api() as api:
        for key in ("a/k", "a/del", "b/k"):
            await api.client.put(f"/v1/kv/{key}", content=b"v")
        yield Secured(api, await set_up_auth(api))


# Who may: anonymous gets 401 everywhere but the open routes; the others 403 or the route's
# own answer. (status for anonymous, nobody, reader, writer, root)
U, F = 401, 403
TXN_IN = {"compare": [{"key": "a/k", "target": "version", "op": ">", "value": 0}],
          "success": [{"get": {"key": "a/k"}}]}  # fmt: skip
TXN_WRITE = {"success": [{"put": {"key": "a/t", "value": "1"}}]}
TXN_OUTSIDE = {"success": [{"put": {"key": "a/t", "value": "1"}}, {"get": {"key": "b/k"}}]}
MATRIX: list[tuple[str, str, object, tuple[int, int, int, int, int]]] = [
    ("GET", "/a/k", None, (U, F, 200, F, 200)),
    ("PUT", "/a/s", "v", (U, F, F, 204, 204)),  # the seed's key route (a raw body)
    ("GET", "/b/k", None, (U, F, F, F, 200)),
    ("GET", "/v1/kv/a/k", None, (U, F, 200, F, 200)),
    ("PUT", "/v1/kv/a/n", "v", (U, F, F, 201, 201)),
    ("PUT", "/v1/kv/b/n", "v", (U, F, F, F, 201)),
    ("DELETE", "/v1/kv/a/n", None, (U, F, F, 200, 200)),
    ("GET", "/v1/kv?prefix=a/", None, (U, F, 200, F, 200)),
    ("GET", "/v1/kv?prefix=", None, (U, F, F, F, 200)),  # wider than granted
    ("DELETE", "/v1/kv?prefix=a/del", None, (U, F, F, 200, 200)),
    ("POST", "/v1/txn", TXN_IN, (U, F, 200, F, 200)),
    ("POST", "/v1/txn", TXN_WRITE, (U, F, F, 200, 200)),
    ("POST", "/v1/txn", TXN_OUTSIDE, (U, F, F, F, 200)),  # one key outside: refused whole
    ("GET", "/v1/watch?prefix=b/", None, (U, F, F, F, 200)),
    ("GET", "/v1/watch", None, (U, F, F, F, 200)),  # every key: wider than a/
    ("GET", "/v1/leases", None, (U, 200, 200, 200, 200)),
    ("GET", "/v1/members", None, (U, 200, 200, 200, 200)),
    ("POST", "/v1/members", {"id": 9}, (U, F, F, F, 400)),  # root passes (bad body: 400)
    ("DELETE", "/v1/members/9", None, (U, F, F, F, 404)),
    ("POST", "/v1/members/9/promote", None, (U, F, F, F, 404)),
    ("DELETE", "/9", None, (U, F, F, F, 404)),  # the seed's member route
    ("GET", "/v1/leader", None, (U, 200, 200, 200, 200)),
    ("POST", "/v1/leader", {"id": 1}, (U, F, F, F, 200)),
    ("POST", "/v1/compact", {"revision": 1}, (U, F, F, F, 200)),
    ("GET", "/v1/snapshot", None, (U, F, F, F, 200)),
    ("GET", "/v1/auth/users", None, (U, F, F, F, 200)),
    ("GET", "/v1/auth/roles/reader", None, (U, F, F, F, 200)),
    ("POST", "/v1/auth/roles", {"name": "extra"}, (U, F, F, F, 201)),
    ("GET", "/v1/auth/status", None, (200, 200, 200, 200, 200)),
    ("GET", "/-/health", None, (200, 200, 200, 200, 200)),
    ("GET", "/-/ready", None, (200, 200, 200, 200, 200)),
    ("GET", "/-/status", None, (U, F, F, F, 200)),
    ("GET", "/-/metrics", None, (U, F, F, F, 200)),
]


async def test_the_permission_matrix(secured: Secured) -> None:
    for role_index, role in enumerate(ROLES):
        for method, path, body, expected in MATRIX:
            if path.startswith("/v1/watch") and expected[role_index] == 200:
                continue  # a stream: checked below
            if isinstance(body, str):
                r = await secured.api.client.request(
                    method, path, content=body.encode(), headers=secured.headers[role]
                )
                status = r.status_code
            else:
                status = await secured.request(role, method, path, body)
            assert status == expected[role_index], (role, method, path, body, status)


async def test_a_granted_watch_streams_and_a_wider_one_is_refused(secured: Secured) -> None:
    headers = list(secured.headers["reader"].items())
    async with stream(secured.api.app, "/v1/watch", "prefix=a/", headers) as s:
        assert s.status == 200
    async with stream(secured.api.app, "/v1/watch", "prefix=", headers) as s:
        assert s.status == 403
    async with stream(secured.api.app, "/v1/watch", "key=b/k", headers) as s:
        assert s.status == 403


async def test_lease_revoke_needs_write_on_every_attached_key(secured: Secured) -> None:
    root = secured.headers["root"]
    c = secured.api.client
    lease = (await c.post("/v1/leases", json={"ttl": 60}, headers=root)).json()["id"]
    await c.put(f"/v1/kv/a/l?lease={lease}", content=b"v", headers=root)
    await c.put(f"/v1/kv/b/l?lease={lease}", content=b"v", headers=root)
    assert await secured.request("writer", "DELETE", f"/v1/leases/{lease}") == 403
    assert await secured.request("root", "DELETE", f"/v1/leases/{lease}") == 200
    granted = await c.post("/v1/leases", json={"ttl": 60}, headers=secured.headers["nobody"])
    assert granted.status_code == 201  # granting needs only a user, as etcd


async def test_403_does_not_tell_whether_a_key_exists(secured: Secured) -> None:
    c, h = secured.api.client, secured.headers["reader"]
    there, absent = await c.get("/v1/kv/b/k", headers=h), await c.get("/v1/kv/b/none", headers=h)
    assert (there.status_code, there.content) == (absent.status_code, absent.content)
    assert there.status_code == 403


async def test_bad_tokens_are_401_with_an_invalid_token_challenge(secured: Secured) -> None:
    c = secured.api.client
    token = secured.headers["reader"]["authorization"]
    for value in ("Bearer nonsense", "Basic abc", "Bearer " + token[7:-2] + "xx", "Bearer "):
        r = await c.get("/v1/kv/a/k", headers={"authorization": value})
        assert r.status_code == 401, value
        assert "invalid_token" in r.headers["www-authenticate"]


async def test_changing_a_users_password_or_roles_invalidates_its_tokens(secured: Secured) -> None:
    assert await secured.request("reader", "GET", "/v1/kv/a/k") == 200
    root = secured.headers["root"]
    r = await secured.api.client.put(
        "/v1/auth/users/reader/password", json={"password": "new-pw"}, headers=root
    )
    assert r.status_code == 200
    assert await secured.request("reader", "GET", "/v1/kv/a/k") == 401
    r = await secured.api.client.post(
        "/v1/auth/token", json={"user": "reader", "password": "new-pw"}
    )
    secured.headers["reader"] = {"authorization": f"Bearer {r.json()['token']}"}
    assert await secured.request("reader", "GET", "/v1/kv/a/k") == 200
    await secured.api.client.delete("/v1/auth/users/reader/roles/reader", headers=root)
    assert await secured.request("reader", "GET", "/v1/kv/a/k") == 401


async def test_failed_logins_are_rate_limited_per_user_and_source(
    secured: Secured, caplog: pytest.LogCaptureFixture
) -> None:
    c = secured.api.client
    caplog.set_level(logging.DEBUG)
    statuses = []
    for _ in range(7):
        r = await c.post("/v1/auth/token", json={"user": "reader", "password": "guess-pw"})
        statuses.append(r.status_code)
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"] == "too many attempts"
    # Another user from the same source is not slowed; the right password is still refused
    # while the bucket is empty (no oracle for a guesser).
    ok = await c.post("/v1/auth/token", json={"user": "writer", "password": PASSWORD["writer"]})
    assert ok.status_code == 200
    again = await c.post("/v1/auth/token", json={"user": "reader", "password": "reader-pw"})
    assert again.status_code == 429
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for password in (*PASSWORD.values(), "guess-pw", "new-pw"):
        assert password not in logged


async def test_auth_enable_needs_root_and_disable_opens_again(secured: Secured) -> None:
    assert await secured.request("writer", "POST", "/v1/auth/disable") == 403
    assert await secured.request("root", "POST", "/v1/auth/disable") == 200
    assert await secured.request("anonymous", "GET", "/v1/kv/b/k") == 200
    r = await secured.api.client.post("/v1/auth/enable")
    assert r.status_code == 200 and r.json()["enabled"] is True
    assert await secured.request("anonymous", "GET", "/v1/kv/b/k") == 401
    # The old tokens were signed with the secret of the first enable: they are dead.
    assert await secured.request("root", "GET", "/v1/kv/b/k") == 401


async def test_auth_refusals_are_clear_json() -> None:
    async with open_api() as api:
        r = await api.client.post("/v1/auth/enable")
        assert r.status_code == 400 and "root" in r.json()["detail"]
        await api.client.post("/v1/auth/users", json={"name": "u"})
        r = await api.client.post("/v1/auth/users", json={"name": "u"})
        assert r.status_code == 409
        r = await api.client.put("/v1/auth/users/u/roles/none")
        assert r.status_code == 404
        r = await api.client.post("/v1/auth/roles/none/grant", json={"perm": "all", "key": "k"})
        assert r.status_code == 400
        r = await api.client.post("/v1/auth/token", json={"user": "u", "password": "x"})
        assert r.status_code == 401  # auth is not enabled: no tokens
