"""Reads at a revision, compaction and delete by prefix over HTTP, in process; every refusal
answers JSON and leaves no trace in the log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from _nodes import Api, open_api, stream

from raftkv.kv import Limits


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with open_api(Limits(max_key_bytes=64, max_value_bytes=1000)) as api:
        yield api


async def _history(api: Api) -> None:
    """Revisions 1..4: k=1, k=2, other=x, k deleted."""
    c = api.client
    assert (await c.put("/v1/kv/k", content=b"1")).json() == {"revision": 1}
    assert (await c.put("/v1/kv/k", content=b"2")).json() == {"revision": 2}
    assert (await c.put("/v1/kv/other", content=b"x")).json() == {"revision": 3}
    assert (await c.delete("/v1/kv/k")).json() == {"revision": 4, "deleted": 1}


async def test_a_key_at_every_revision(api: Api) -> None:
    await _history(api)
    c = api.client
    for revision, value in ((1, b"1"), (2, b"2"), (3, b"2")):
        r = await c.get("/v1/kv/k", params={"revision": revision})
        assert (r.status_code, r.content) == (200, value), revision
        assert r.headers["etag"] == f'"{min(revision, 2)}"'
        assert r.headers["x-create-revision"] == "1"
    r = await c.get("/v1/kv/k", params={"revision": 4})
    assert r.status_code == 404 and r.json()["error"] == "key not found"
    r = await c.get("/v1/kv/other", params={"revision": 2})
    assert r.status_code == 404  # not created yet
    r = await c.get("/v1/kv/k", params={"revision": 2, "consistency": "serializable"})
    assert r.content == b"2"
    r = await c.get("/k", params={"revision": 1})  # the seed route reads the same way
    assert r.content == b"1"


async def test_a_listing_at_a_revision(api: Api) -> None:
    await _history(api)
    r = await api.client.get("/v1/kv", params={"prefix": "", "revision": 3})
    body = r.json()
    assert [(kv["key"], kv["value"], kv["mod_revision"]) for kv in body["kvs"]] == [
        ("k", "2", 2),
        ("other", "x", 3),
    ]
    assert body["revision"] == 4  # the store's revision, not the one read at
    r = await api.client.get("/v1/kv", params={"revision": 1, "limit": 1, "after": "a"})
    assert [kv["key"] for kv in r.json()["kvs"]] == ["k"]


@pytest.mark.parametrize("bad", ["0", "-1", "x", "1.5", "\u00b2", "", "99999999999999999999"])
async def test_a_bad_revision_is_400(api: Api, bad: str) -> None:
    await _history(api)
    unchanged = api.unchanged()
    for path in ("/v1/kv/k", "/v1/kv", "/k"):
        r = await api.client.get(path, params={"revision": bad})
        assert r.status_code == 400, (path, bad)
        assert r.json()["error"] == "bad revision"
        assert "integer >= 1" in r.json()["detail"]
    unchanged()


async def test_a_future_revision_is_400(api: Api) -> None:
    await _history(api)
    for path in ("/v1/kv/k", "/v1/kv"):
        r = await api.client.get(path, params={"revision": 5})
        assert r.status_code == 400
        assert r.json() == {
            "error": "future revision",
            "detail": "revision 5 is in the future: the store is at 4",
            "current_revision": 4,
        }


async def test_compaction(api: Api) -> None:
    await _history(api)
    c = api.client
    r = await c.post("/v1/compact", json={"revision": 2})
    assert (r.status_code, r.json()) == (200, {"revision": 4, "compact_revision": 2})
    # Below the compaction point: 410 with the point; the point itself stays readable.
    r = await c.get("/v1/kv/k", params={"revision": 1})
    assert r.status_code == 410
    assert r.json() == {
        "error": "revision compacted",
        "detail": "revision 1 is compacted: the oldest readable revision is 2",
        "compact_revision": 2,
    }
    assert (await c.get("/v1/kv", params={"revision": 1})).status_code == 410
    assert (await c.get("/v1/kv/k", params={"revision": 2})).content == b"2"
    # A watch starts after the compaction point at the earliest.
    r = await c.get("/v1/watch", params={"start_revision": 2})
    assert r.status_code == 410 and r.json()["compact_revision"] == 2
    async with stream(api.app, "/v1/watch", "start_revision=3") as s:
        assert s.status == 200
        assert [e.id for e in await s.changes(2)] == [3, 4]
    # Compacting again at or below the point, or past the current revision, is refused.
    unchanged = api.unchanged()
    for revision in (1, 2):
        r = await c.post("/v1/compact", json={"revision": revision})
        assert r.status_code == 410 and r.json()["compact_revision"] == 2
    r = await c.post("/v1/compact", json={"revision": 5})
    assert r.status_code == 400 and r.json()["error"] == "future revision"
    unchanged()
    r = await c.post("/v1/compact", json={"revision": 4})
    assert r.json() == {"revision": 4, "compact_revision": 4}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b"{}",
        b'{"revision": "2"}',
        b'{"revision": 0}',
        b'{"revision": true}',
        b'{"revision": 2.0}',
        b'{"revision": 2, "physical": true}',
        b'{"revision": NaN}',
        b"\xff",
    ],
)
async def test_a_bad_compaction_body_is_400(api: Api, body: bytes) -> None:
    await _history(api)
    unchanged = api.unchanged()
    r = await api.client.post("/v1/compact", content=body)
    assert r.status_code == 400, body
    assert r.json()["error"] == "bad body"
    assert '{"revision": ' in r.json()["detail"]
    unchanged()


async def test_compaction_takes_only_post(api: Api) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = await api.client.request(method, "/v1/compact")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        assert r.json()["error"] == "method not allowed"
    r = await api.client.post("/v1/compact", content=b"x" * 2000)
    assert r.status_code == 413


async def test_delete_by_prefix(api: Api) -> None:
    c = api.client
    for key in ("a/1", "a/2", "a", "b/1"):
        await c.put(f"/v1/kv/{key}", content=b"v")
    r = await c.delete("/v1/kv", params={"prefix": "a/"})
    assert (r.status_code, r.json()) == (200, {"revision": 5, "deleted": 2})
    r = await c.get("/v1/kv", params={"prefix": ""})
    assert [kv["key"] for kv in r.json()["kvs"]] == ["a", "b/1"]
    # Nothing under it: nothing changes, no revision.
    r = await c.delete("/v1/kv", params={"prefix": "zz"})
    assert (r.status_code, r.json()) == (200, {"revision": 5, "deleted": 0})
    # The history keeps what was deleted, at one revision.
    async with stream(api.app, "/v1/watch", "prefix=a/&start_revision=5") as s:
        (change,) = await s.changes(1)
    assert change.data == {
        "revision": 5,
        "events": [
            {
                "type": "delete",
                "kv": {
                    "key": key,
                    "value": "",
                    "create_revision": 0,
                    "mod_revision": 5,
                    "version": 0,
                },
            }
            for key in ("a/1", "a/2")
        ],
    }
    r = await c.delete("/v1/kv?prefix=")  # an empty prefix: every key
    assert r.json() == {"revision": 6, "deleted": 2}
    assert (await c.get("/v1/kv")).json()["kvs"] == []


async def test_delete_by_prefix_needs_the_parameter(api: Api) -> None:
    await api.client.put("/v1/kv/a", content=b"v")
    unchanged = api.unchanged()
    r = await api.client.delete("/v1/kv")
    assert r.status_code == 400 and r.json()["error"] == "missing prefix"
    r = await api.client.delete("/v1/kv", params={"prefix": "a"}, headers={"If-Match": '"1"'})
    assert r.status_code == 400 and r.json()["error"] == "bad condition"
    r = await api.client.delete("/v1/kv", params={"prefix": "k" * 65})
    assert r.status_code == 400 and r.json()["error"] == "invalid key"
    r = await api.client.put("/v1/kv", content=b"v")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"
    unchanged()
    assert (await api.client.get("/v1/kv/a")).content == b"v"
