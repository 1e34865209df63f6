"""A fake raftkv cluster behind ``httpx.MockTransport``: the HTTP API as documented, on a real
``KVStateMachine``, with scripted failures per endpoint. No network.

Watch streams (``GET /v1/watch``) are made lazily from the store's history as the client reads
them, so a test may write between two reads; a stream ends once it has caught up, unless
scripted otherwise (``watch_stream``).

The fixtures are in ``conftest.py``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote_to_bytes

import httpx

import raftkv
from raftkv.client import AsyncClient, RetryPolicy
from raftkv.kv import (
    CompactCommand,
    CompactRefused,
    CompareFailed,
    DeletePrefixCommand,
    KVStateMachine,
    encode_command,
    encode_delete,
    encode_put,
    key_value_to_json,
    txn_from_json,
)
from raftkv_cli._txn import txn_result_json
from raftkv_cli.routes.watch import batch_json

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
        try:
            return self._route(request, raw)
        except raftkv.Compacted as exc:
            error = {"error": "revision compacted", "detail": str(exc)}
            return self.json({**error, "compact_revision": exc.compact_revision}, 410)
        except raftkv.FutureRevision as exc:
            error = {"error": "future revision", "detail": str(exc)}
            return self.json({**error, "current_revision": exc.current}, 400)

    def _route(self, request: httpx.Request, raw: str) -> httpx.Response:
        path, _, query = raw.partition("?")
        params = {k: unquote_to_bytes(v) for k, v in parse_qsl(query, keep_blank_values=True)}
        method = request.method
        revision = int(params["revision"]) if "revision" in params else None
        if path.startswith("/v1/kv/"):
            key = unquote_to_bytes(path.removeprefix("/v1/kv/"))
            if method == "GET":
                kv = self.kv.get(key, revision=revision)
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
        if path == "/v1/kv" and method == "DELETE":
            result = self.apply(encode_command(DeletePrefixCommand(params["prefix"])))
            return self.json({"revision": result.revision, "deleted": len(result.deleted)})
        if path == "/v1/compact" and method == "POST":
            result = self.apply(
                encode_command(CompactCommand(json.loads(request.read())["revision"]))
            )
            if isinstance(result, CompactRefused):
                return self.json(
                    {"error": "refused", "compact_revision": result.compact_revision}, 410
                )
            return self.json(
                {"revision": result.revision, "compact_revision": result.compact_revision}
            )
        if path == "/v1/txn" and method == "POST":
            txn = txn_from_json(json.loads(request.read()))
            return self.json(txn_result_json(txn, self.apply(encode_command(txn))))
        if path == "/v1/watch" and method == "GET":
            return self.watch_stream(request)
        if path == "/v1/kv" and method == "GET":
            limit = int(params.get("limit", b"1000"))
            result = self.kv.range(
                params.get("prefix", b""), after=params.get("after"), limit=limit, revision=revision
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

    def watch_stream(
        self,
        request: httpx.Request,
        *,
        changes: int | None = None,
        then: Literal["end", "break", "error"] = "end",
        replay: int = 0,
    ) -> httpx.Response:
        """A watch's stream, as ``/v1/watch`` answers it: the opening progress event, then
        ``changes`` change events (None: every one until caught up), a progress event at the
        current revision if it caught up, and then the end, a broken connection, or an error
        event.
        ``replay``: start that many revisions early (a member sending what was seen)."""
        params = dict(request.url.params)
        start = int(params.get("start_revision", self.kv.revision + 1))
        if self.kv.compact_revision and start <= self.kv.compact_revision:
            raise raftkv.Compacted(start, self.kv.compact_revision)
        key, prefix = params.get("key"), params.get("prefix")
        prev_kv = params.get("prev_kv") == "true"

        def matches(k: bytes) -> bool:
            if key is not None:
                return k == key.encode()
            return prefix is None or k.startswith(prefix.encode())

        def events() -> Iterator[bytes]:
            yield _sse("progress", start - 1, {"revision": start - 1})
            sent, next_revision = 0, max(start - replay, 1)
            while changes is None or sent < changes:
                found = [
                    (rev, mine)
                    for rev, keys in self.kv.changes_since(next_revision)
                    if (mine := tuple(k for k in keys if matches(k)))
                ]
                if not found:
                    next_revision = max(next_revision, self.kv.revision + 1)
                    yield _sse("progress", next_revision - 1, {"revision": next_revision - 1})
                    break
                rev, mine = found[0]
                yield _sse("change", rev, batch_json(self.kv.batch(rev, mine, prev_kv=prev_kv)))
                sent, next_revision = sent + 1, rev + 1
            if then == "break":
                raise httpx.ReadError("scripted: the connection broke", request=request)
            if then == "error":
                data = {"error": "scripted", "resume_revision": next_revision}
                yield _sse("error", next_revision - 1, data)

        headers = {**self.headers(), "content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, stream=_Chunks(events()))

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


def _sse(kind: str, revision: int, data: object) -> bytes:
    return f"id: {revision}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


class _Chunks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body made as it is read, for the blocking and the async client alike."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
