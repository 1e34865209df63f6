"""``GET /v1/watch``: a watch as Server-Sent Events (raw ASGI: the response streams).

The stream opens with a ``progress`` event at the revision before its start, then carries one
``change`` event per revision that touched a watched key, and a ``progress`` event naming the
current revision whenever it was idle for ``progress_interval`` seconds. Every event's ``id`` is
a revision up to which everything was delivered, so resuming at ``id + 1`` (``Last-Event-ID``)
misses nothing and repeats nothing. A watch that ends early (its consumer fell behind, the node
is stopping or was removed, the history it needs was compacted) ends with an ``error`` event
naming the revision to resume at: never a silent gap.

While the stream runs, a task waits for the client to go away (``http.disconnect``) and cancels
it, so its watcher is released at once.
"""

from __future__ import annotations

import json
from typing import Any, Final

import trio

from raftkv.kv import KVService, WatchBatch, Watcher, WatchLost, key_value_to_json

from .._http import HTTPError
from .._request import Receive, Scope, Send, watch_request

__all__ = ["DEFAULT_PROGRESS_INTERVAL", "WATCH_PATH", "WatchRoute", "batch_json"]

WATCH_PATH: Final = "/v1/watch"
DEFAULT_PROGRESS_INTERVAL: Final = 5.0
_HEADERS: Final = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_REMOVED: Final = "this node was removed from the cluster"


def batch_json(batch: WatchBatch) -> dict[str, Any]:
    """A revision's events as the ``data`` of a ``change`` event."""
    events = []
    for e in batch.events:
        event: dict[str, Any] = {"type": e.type, "kv": key_value_to_json(e.kv)}
        if e.prev_kv is not None:
            event["prev_kv"] = key_value_to_json(e.prev_kv)
        events.append(event)
    return {"revision": batch.revision, "events": events}


def _event(kind: str, revision: int, data: object) -> bytes:
    text = json.dumps(data, separators=(",", ":"))  # one line: ASCII, newlines escaped
    return f"id: {revision}\nevent: {kind}\ndata: {text}\n\n".encode()


class _EventStream:
    """The response body, one event at a time. Invariant: every revision up to ``through`` that
    touched a watched key was sent."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.through = 0

    async def _write(self, chunk: bytes, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def change(self, batch: WatchBatch) -> None:
        await self._write(_event("change", batch.revision, batch_json(batch)))
        self.through = batch.revision

    async def progress(self, revision: int) -> None:
        await self._write(_event("progress", revision, {"revision": revision}))
        self.through = revision

    async def error(self, reason: str, resume_revision: int) -> None:
        """The last event: why the watch ended, and where to resume; then the end."""
        resume = max(resume_revision, self.through + 1)
        data = {"error": reason, "resume_revision": resume}
        await self._write(_event("error", resume - 1, data), more=False)


class WatchRoute:
    def __init__(
        self, service: KVService, *, progress_interval: float = DEFAULT_PROGRESS_INTERVAL
    ) -> None:
        self.service = service
        self.progress_interval = progress_interval

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one watch. What is raised before the response starts is answered as an error
        (400, 410, 503, ...) by the caller."""
        request = watch_request(scope, self.service.limits)
        if self.service.node.removed:
            detail = f"{_REMOVED}: watch another member"
            raise HTTPError(503, "removed", detail, {"Retry-After": "1"})
        async with self.service.watch(
            key=request.key,
            prefix=request.prefix,
            start_revision=request.start_revision,
            prev_kv=request.prev_kv,
        ) as watcher:
            start = watcher.next_revision
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            events = _EventStream(send)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_disconnect, receive, nursery.cancel_scope)
                await events.progress(start - 1)
                reason, resume = await self._relay(watcher, events)
                await events.error(reason, resume)
                nursery.cancel_scope.cancel()

    async def _relay(self, watcher: Watcher, events: _EventStream) -> tuple[str, int]:
        """Send the watcher's revisions (progress when idle) until the watch ends; why it
        ended and where to resume."""
        store, node = self.service.store, self.service.node
        try:
            while True:
                batch = await watcher.next(self.progress_interval)
                if batch is None:
                    if node.removed:
                        return _REMOVED, watcher.next_revision
                    # Read before asking again: if nothing more is handed over, every revision
                    # up to this one was delivered (one arriving meanwhile is after it).
                    current = store.revision
                    batch = await watcher.next(0)
                    if batch is None:
                        await events.progress(max(current, events.through))
                        continue
                await events.change(batch)
        except WatchLost as lost:
            return lost.reason, lost.resume_revision


async def _cancel_on_disconnect(receive: Receive, cancel_scope: trio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    cancel_scope.cancel()
