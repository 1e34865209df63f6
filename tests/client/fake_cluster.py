"""A fake raftkv cluster behind ``httpx.MockTransport``: the HTTP API as documented, on a real
``KVStateMachine``, with scripted failures per endpoint. No network.

The fixtures are in ``conftest.py``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

import httpx

from raftkv.client import AsyncClient, RetryPolicy
from raftkv.kv import CompareFailed, KVStateMachine, encode_delete, encode_put, key_value_to_json

ENDPOINTS = ("http://n1:12380", "http://n2:22380", "http://n3:32380")
NO_WAIT = RetryPolicy(rounds=2, backoff=0, max_backoff=0, jitter=False)

# A scripted answer: an HTTP status (with an error body), a transport exception class, or a
# callable building the response.
Script = int | type[Exception] | Callable[[httpx.Request], httpx.Response]


@dataclass
class Seen:
    endpoint: str
    method: str
    target: str
    headers: httpx.Headers
    content: bytes


@dataclass
class FakeCluster:
    kv: KVStateMachine = field(default_factory=KVStateMachine)
    members: dict[int, str] = field(
        default_factory=lambda: {1: "http://n1:12379", 2: "http://n2:22379", 3: "http://n3:32379"}
    )
    leader: int = 1
    term: int = 3
    # endpoint -> what its next requests meet before reaching the real handler
    scripts: dict[str, list[Script]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def script(self, endpoint: str, *items: Script) -> None:
        self.scripts.setdefault(endpoint, []).extend(items)

    def endpoints_seen(self) -> list[str]:
        return [s.endpoint for s in self.seen]

    # -- transport --

    def handle(self, request: httpx.Request) -> httpx.Response:
        endpoint = f"{request.url.scheme}://{request.url.host}:{request.url.port}"
        raw = request.url.raw_path.decode("ascii")
        self.seen.append(Seen(endpoint, request.method, raw, request.headers, request.read()))
        queue = self.scripts.get(endpoint)
        if queue:
            item = queue.pop(0)
            if isinstance(item, int):
                return self.error(item, f"scripted {item}", f"from {endpoint}")
            if isinstance(item, type):
                raise item(f"scripted {item.__name__}", request=request)
            return item(request)
        return self.route(request, raw)

    def mock_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- the API --

    def headers(self) -> dict[str, str]:
        return {"X-Raft-Index": str(self.kv.applied_index), "X-Raft-Term": str(self.term)}

    def json(self, body: Any, status: int = 200, **headers: str) -> httpx.Response:
        return httpx.Response(status, json=body, headers={**self.headers(), **headers})

    def error(self, status: int, error: str, detail: str, **headers: str) -> httpx.Response:
        if status == 503:
            headers.setdefault("Retry-After", "1")
        return self.json({"error": error, "detail": detail}, status, **headers)

    def apply(self, command: bytes) -> Any:
        return self.kv.apply(self.kv.applied_index + 1, command)

    def condition(self, request: httpx.Request) -> int | None:
        if "if-none-match" in request.headers:
            return 0
        if "if-match" in request.headers:
            return int(request.headers["if-match"].strip('"'))
        return None

    def route(self, request: httpx.Request, raw: str) -> httpx.Response:
        path, _, query = raw.partition("?")
        params = {k: unquote_to_bytes(v) for k, v in parse_qsl(query, keep_blank_values=True)}
        method = request.method
        if path.startswith("/v1/kv/"):
            key = unquote_to_bytes(path.removeprefix("/v1/kv/"))
            if method == "GET":
                kv = self.kv.get(key)
                if kv is None:
                    return self.error(404, "key not found", key.decode("utf-8", "replace"))
                return httpx.Response(
                    200,
                    content=kv.value,
                    headers={**self.headers(), "ETag": f'"{kv.mod_revision}"'},
                )
            if method == "PUT":
                result = self.apply(
                    encode_put(key, request.read(), if_revision=self.condition(request))
                )
                if isinstance(result, CompareFailed):
                    return self.error(
                        412, "precondition failed", "mismatch", ETag=f'"{result.mod_revision}"'
                    )
                return self.json(
                    {"revision": result.revision},
                    201 if result.prev is None else 200,
                    ETag=f'"{result.revision}"',
                )
            if method == "DELETE":
                result = self.apply(encode_delete(key, if_revision=self.condition(request)))
                if isinstance(result, CompareFailed):
                    return self.error(412, "precondition failed", "mismatch")
                if not result.deleted:
                    return self.error(404, "key not found", key.decode("utf-8", "replace"))
                return self.json({"revision": result.revision, "deleted": 1})
        if path == "/v1/kv" and method == "GET":
            limit = int(params.get("limit", b"1000"))
            result = self.kv.range(
                params.get("prefix", b""), after=params.get("after"), limit=limit
            )
            return self.json(
                {
                    "kvs": [key_value_to_json(kv) for kv in result.kvs],
                    "more": result.more,
                    "revision": result.revision,
                }
            )
        if path == "/v1/members":
            if method == "POST":
                body = json.loads(request.read())
                if body["id"] in self.members:
                    return self.error(409, "member exists", f"node {body['id']} is a member")
                self.members[body["id"]] = body["peer_url"]
            return self.json(self.members_json())
        if path.startswith("/v1/members/") and method == "DELETE":
            member = int(path.rsplit("/", 1)[1])
            if member not in self.members:
                return self.error(404, "no such member", f"node {member} is not a member")
            del self.members[member]
            return self.json(self.members_json())
        if path == "/v1/leader" and method == "POST":
            self.leader = json.loads(request.read())["id"]
            return self.json({"leader": self.leader})
        if path == "/-/status":
            return self.json({"id": 1, "role": "leader", "term": self.term, **self.members_json()})
        return self.error(405, "method not allowed", f"{method} {path}")

    def members_json(self) -> dict[str, Any]:
        members = [
            {
                "id": i,
                "peer_url": url,
                "client_url": None,
                "voter": True,
                "leader": i == self.leader,
            }
            for i, url in sorted(self.members.items(), reverse=True)
        ]
        return {"members": members, "leader": self.leader}


def async_client(cluster: FakeCluster, retry: RetryPolicy = NO_WAIT) -> AsyncClient:
    return AsyncClient(list(ENDPOINTS), retry=retry, transport=cluster.mock_transport())
