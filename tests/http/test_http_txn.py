"""``POST /v1/txn`` in process: compares, branches, one revision, every response; every malformed
or over-limit transaction answers 400 (413 for the body) naming what is wrong, and reaches
nothing of the log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _nodes import Api, open_api, stream

from raftkv.kv import Limits

LIMITS = Limits(
    max_key_bytes=64, max_value_bytes=1000, max_list_limit=50, max_txn_ops=8, max_txn_bytes=4096
)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with open_api(LIMITS) as api:
        yield api


async def _txn(api: Api, body: Any, status: int = 200) -> dict[str, Any]:
    r = await api.client.post("/v1/txn", json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    value: dict[str, Any] = r.json()
    return value


def kv(key: str, value: str, create: int, mod: int, version: int) -> dict[str, Any]:
    return {
        "key": key,
        "value": value,
        "create_revision": create,
        "mod_revision": mod,
        "version": version,
    }


async def test_the_success_branch_at_one_revision(api: Api) -> None:
    await api.client.put("/v1/kv/k", content=b"v")  # 1
    await api.client.put("/v1/kv/p/a", content=b"1")  # 2
    body = {
        "compare": [{"key": "k", "target": "value", "op": "==", "value": "v"}],
        "success": [
            {"put": {"key": "k", "value": "w"}},
            {"put": {"key": "p/b", "value": "2"}},
            {"get": {"key": "k"}},
            {"range": {"prefix": "p/"}},
            {"delete": {"key": "absent"}},
        ],
        "failure": [{"get": {"key": "k"}}],
    }
    assert await _txn(api, body) == {
        "succeeded": True,
        "revision": 3,
        "responses": [
            {"put": {"revision": 3, "prev_kv": kv("k", "v", 1, 1, 1)}},
            {"put": {"revision": 3}},
            {"get": {"kvs": [kv("k", "w", 1, 3, 2)]}},
            {"range": {"kvs": [kv("p/a", "1", 2, 2, 1), kv("p/b", "2", 3, 3, 1)], "more": False}},
            {"delete": {"deleted": 0}},
        ],
    }
    # Both writes are one revision: one change event with both.
    async with stream(api.app, "/v1/watch", "start_revision=3") as s:
        (change,) = await s.changes(1)
    assert [e["kv"]["key"] for e in change.data["events"]] == ["k", "p/b"]


async def test_the_failure_branch(api: Api) -> None:
    await api.client.put("/v1/kv/k", content=b"v")
    body = {
        "compare": [
            {"key": "k", "target": "value", "op": "==", "value": "v"},
            {"key": "k", "target": "version", "op": ">", "value": 1},
        ],
        "success": [{"put": {"key": "k", "value": "never"}}],
        "failure": [{"get": {"key": "k"}}, {"delete": {"prefix": ""}}, {"get": {"key": "k"}}],
    }
    assert await _txn(api, body) == {
        "succeeded": False,
        "revision": 2,
        "responses": [
            {"get": {"kvs": [kv("k", "v", 1, 1, 1)]}},
            {"delete": {"deleted": 1}},
            {"get": {"kvs": []}},
        ],
    }


@pytest.mark.parametrize(
    ("compare", "holds"),
    [
        ({"target": "value", "op": "==", "value": "v"}, True),
        ({"target": "value", "op": "!=", "value": "v"}, False),
        ({"target": "value", "op": "<", "value": "w"}, True),
        ({"target": "value", "op": ">", "value": "w"}, False),
        ({"target": "value", "op": "==", "value_b64": "dg=="}, True),
        ({"target": "version", "op": "==", "value": 2}, True),
        ({"target": "version", "op": "<", "value": 2}, False),
        ({"target": "create_revision", "op": "==", "value": 1}, True),
        ({"target": "mod_revision", "op": ">", "value": 1}, True),
        ({"target": "mod_revision", "op": "!=", "value": 2}, False),
        ({"key": "absent", "target": "version", "op": "==", "value": 0}, True),
        ({"key": "absent", "target": "create_revision", "op": "==", "value": 0}, True),
        ({"key": "absent", "target": "value", "op": "!=", "value": "x"}, False),  # as etcd
    ],
)
async def test_compares(api: Api, compare: dict[str, Any], holds: bool) -> None:
    await api.client.put("/v1/kv/k", content=b"u")
    await api.client.put("/v1/kv/k", content=b"v")
    body = {"compare": [{"key": "k", **compare}]}
    result = await _txn(api, body)
    assert result == {"succeeded": holds, "revision": 2, "responses": []}


async def test_bytes_as_base64(api: Api) -> None:
    body = {
        "success": [
            {"put": {"key_b64": "/w==", "value_b64": "//4="}},
            {"get": {"key_b64": "/w=="}},
            {"range": {"prefix_b64": "/w==", "limit": 1}},
        ]
    }
    result = await _txn(api, body)
    found = {"key_b64": "/w==", "value_b64": "//4=", "create_revision": 1}
    found |= {"mod_revision": 1, "version": 1}
    assert result["responses"][1:] == [
        {"get": {"kvs": [found]}},
        {"range": {"kvs": [found], "more": False}},
    ]
    r = await api.client.get("/v1/kv/%FF")
    assert r.content == b"\xff\xfe"


async def test_a_range_is_limited(api: Api) -> None:
    for i in range(60):
        await api.client.put(f"/v1/kv/r/{i:02}", content=b"v")
    result = await _txn(api, {"success": [{"range": {"prefix": "r/"}}]})
    (response,) = result["responses"]
    assert len(response["range"]["kvs"]) == 50 and response["range"]["more"]  # the list limit
    result = await _txn(api, {"success": [{"range": {"prefix": "r/", "limit": 3}}]})
    assert [kv["key"] for kv in result["responses"][0]["range"]["kvs"]] == ["r/00", "r/01", "r/02"]


async def test_an_empty_transaction(api: Api) -> None:
    assert await _txn(api, {}) == {"succeeded": True, "revision": 0, "responses": []}


BAD = [
    ([], "transaction: expected a JSON object"),
    ({"compares": []}, "compares: unknown field"),
    ({"compare": {}}, "compare: expected a JSON array"),
    (
        {
            "compare": [
                {"key": "k", "target": "value", "op": "==", "value": "v"},
                {"key": "k", "target": "size", "op": "==", "value": 1},
            ]
        },
        "compare[1].target: unknown target 'size'",
    ),
    ({"compare": [{"key": "k", "target": "value", "op": "=", "value": "v"}]}, "compare[0].op:"),
    (
        {"compare": [{"key": "k", "target": "version", "op": "==", "value": "1"}]},
        "compare[0].value",
    ),
    ({"compare": [{"key": "k", "target": "version", "op": "==", "value": -1}]}, "compare[0].value"),
    (
        {"compare": [{"key": "k", "target": "version", "op": "==", "value": True}]},
        "compare[0].value",
    ),
    (
        {"compare": [{"key": "k", "target": "value", "op": "==", "value": 1}]},
        "compare[0]: expected",
    ),
    ({"compare": [{"key": "", "target": "version", "op": "==", "value": 0}]}, "compare[0].key:"),
    ({"compare": [{"target": "version", "op": "==", "value": 0}]}, "compare[0]: expected exactly"),
    (
        {"compare": [{"key": "k", "key_b64": "aw==", "target": "version", "op": "==", "value": 0}]},
        "compare[0]:",
    ),
    (  # a put may name a lease, an integer id >= 1
        {"success": [{"put": {"key": "k", "value": "v", "lease": "1"}}]},
        "success[0].put.lease: a lease id is an integer",
    ),
    ({"success": [{"patch": {"key": "k"}}]}, "success[0].patch: unknown operation"),
    (
        {"success": [{"put": {"key": "k", "value": "v"}, "get": {"key": "k"}}]},
        "success[0]: expected",
    ),
    ({"success": ["put"]}, "success[0]: expected"),
    ({"success": [{"put": {"key": "k"}}]}, "success[0].put: expected exactly one of 'value'"),
    ({"success": [{"get": {"key_b64": "!"}}]}, "success[0].get: bad base64 in key_b64"),
    ({"failure": [{"delete": {"key": "k", "prefix": "k"}}]}, "failure[0].delete: delete a key or"),
    ({"failure": [{"delete": {}}]}, "failure[0].delete: expected exactly one of 'key'"),
    ({"failure": [{"range": {"prefix": "p", "limit": 0}}]}, "failure[0].range.limit"),
    ({"failure": [{"range": {"prefix": "p", "limit": 51}}]}, "failure[0].range.limit"),
    ({"failure": [{"range": {"limit": 1}}]}, "failure[0].range: expected exactly one of 'prefix'"),
    ({"failure": [{"get": []}]}, "failure[0].get: expected a JSON object"),
]


@pytest.mark.parametrize(("body", "detail"), BAD)
async def test_a_malformed_transaction_is_400_naming_the_field(
    api: Api, body: Any, detail: str
) -> None:
    unchanged = api.unchanged()
    result = await _txn(api, body, 400)
    assert result["error"] == "bad transaction"
    assert result["detail"].startswith(detail), result["detail"]
    unchanged()


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        # Compares and operations together over max_txn_ops (8).
        ({"success": [{"get": {"key": f"k{i}"}} for i in range(9)]}, 400, "invalid transaction"),
        (
            {
                "compare": [{"key": "k", "target": "version", "op": "==", "value": 0}] * 4,
                "success": [{"get": {"key": "k"}}] * 5,
            },
            400,
            "invalid transaction",
        ),
        # One key written twice on a branch.
        (
            {"success": [{"put": {"key": "k", "value": "1"}}, {"delete": {"key": "k"}}]},
            400,
            "invalid transaction",
        ),
        (
            {"failure": [{"put": {"key": "a/b", "value": "1"}}, {"delete": {"prefix": "a/"}}]},
            400,
            "invalid transaction",
        ),
        ({"success": [{"put": {"key": "k" * 65, "value": "1"}}]}, 400, "invalid key"),
        (
            {"compare": [{"key": "k" * 65, "target": "version", "op": "==", "value": 0}]},
            400,
            "invalid key",
        ),
        ({"success": [{"put": {"key": "k", "value": "v" * 1001}}]}, 413, "value too large"),
        ({"success": [{"put": {"key": "k", "value": "v" * 5000}}]}, 413, "transaction too large"),
    ],
)
async def test_limits(api: Api, body: Any, status: int, error: str) -> None:
    unchanged = api.unchanged()
    result = await _txn(api, body, status)
    assert result["error"] == error, result
    unchanged()


async def test_not_json_and_other_methods(api: Api) -> None:
    unchanged = api.unchanged()
    for content in (b"", b"{", b"\xff", b'{"compare": [NaN]}', b"[" * 100_000 + b"]" * 100_000):
        r = await api.client.post("/v1/txn", content=content)
        assert r.status_code in (400, 413), content[:20]
        assert r.json()["error"] in ("bad body", "transaction too large")
    for method in ("GET", "PUT", "DELETE"):
        r = await api.client.request(method, "/v1/txn")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
    unchanged()


async def test_the_same_transaction_as_text(api: Api) -> None:
    # Keys and values are any UTF-8, sent as they are.
    body = {"success": [{"put": {"key": "café/☃", "value": "naïve\n"}}, {"get": {"key": "café/☃"}}]}
    r = await api.client.post("/v1/txn", content=json.dumps(body, ensure_ascii=False).encode())
    (got,) = r.json()["responses"][1]["get"]["kvs"]
    assert (got["key"], got["value"]) == ("café/☃", "naïve\n")
