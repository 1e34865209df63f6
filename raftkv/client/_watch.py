"""Watches from the client, without I/O: Server-Sent Events into ``WatchBatch``es, and where a
broken stream resumes (``WatchSession``). ``Client.watch`` and ``AsyncClient.watch`` drive it.

The stream is ``GET /v1/watch`` (docs/api.md). The session keeps the revision it needs next:
after a ``change`` event at r, r + 1; a ``progress`` event at r moves it to r + 1 as well; an
``error`` event names it (``resume_revision``). A stream reopens there (``start_revision``),
and a revision below it (a member behind the one before, replaying) is skipped: every revision
reaches the caller exactly once, in order, across reconnections. A ``410`` there is raised as
``Compacted``: the history was compacted past it, and skipping it silently would be a gap.

A stream that fails (cannot connect, breaks, stays silent for ``idle_timeout``, is ended by
the server, ends with an ``error`` event) reopens on the next endpoint. The failures of one
outage count as the tries of one request under the client's ``RetryPolicy``: a pause after
each round of endpoints, ``Unavailable`` once the rounds ran out. A stream that worked (it
moved the resume point, or stayed open for ``WORKED_SECONDS``) ends an outage: its failure
starts a new count. One that did neither counts, so a member that keeps ending streams at
once is not asked again and again without a pause.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from ..kv import WatchBatch, WatchEvent, WireFormatError, encode_query_bytes, key_value_from_json
from ._calls import check_revision, raise_for_status
from ._errors import ServerError, Unavailable
from ._retry import Attempt, Endpoints, RetryPolicy
from ._wire import Key, key_bytes, to_bytes

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "WORKED_SECONDS",
    "SSEDecoder",
    "ServerSentEvent",
    "StreamEnded",
    "WatchSession",
    "stream_timeout",
    "watch_batch_from_json",
]

# A stream silent for this long is dead: the server sends progress at least every 5 s.
DEFAULT_IDLE_TIMEOUT = 15.0
WORKED_SECONDS = 1.0  # a stream open this long worked, even if nothing happened meanwhile


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None


class SSEDecoder:
    """``text/event-stream`` lines into events (the WHATWG rules, minus ``retry``)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """One line (without its end of line); the event a blank line completes."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None  # a comment
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def watch_batch_from_json(data: Any) -> WatchBatch:
    """A ``change`` event's data: ``{"revision": r, "events": [{"type", "kv", "prev_kv"?}]}``."""
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise WireFormatError("expected {'revision': r, 'events': [...]}")
    revision = data.get("revision")
    if type(revision) is not int:
        raise WireFormatError("expected 'revision' as an integer")
    events = []
    for e in data["events"]:
        kind = e.get("type") if isinstance(e, dict) else None
        if kind not in ("put", "delete"):
            raise WireFormatError("expected an event of type 'put' or 'delete'")
        prev = e.get("prev_kv")
        events.append(
            WatchEvent(
                "put" if kind == "put" else "delete",
                key_value_from_json(e.get("kv")),
                None if prev is None else key_value_from_json(prev),
            )
        )
    return WatchBatch(revision, tuple(events))


def _revision_in(data: Any, name: str) -> int:
    value = data.get(name) if isinstance(data, dict) else None
    if type(value) is not int or value < 0:
        raise WireFormatError(f"expected {name!r} as an integer >= 0")
    return value


class StreamEnded(Exception):
    """The server ended the stream with an ``error`` event (its reason)."""


class WatchSession:
    """One watch across as many streams as it takes."""

    def __init__(
        self,
        endpoints: Endpoints,
        policy: RetryPolicy,
        *,
        key: Key | None,
        prefix: Key | None,
        start_revision: int | None,
        prev_kv: bool,
    ) -> None:
        if key is not None and prefix is not None:
            raise ValueError("watch a key or a prefix, not both")
        self._query: list[tuple[str, str]] = []
        if key is not None:
            self._query.append(("key", encode_query_bytes(key_bytes(key))))
        if prefix is not None:
            self._query.append(("prefix", encode_query_bytes(to_bytes(prefix, "prefix"))))
        if prev_kv:
            self._query.append(("prev_kv", "true"))
        # Invariant: every revision before next_revision that touched a watched key was handed
        # to the caller, once, in order. None: not known yet (a watch from "now").
        self.next_revision = check_revision(start_revision, "start_revision")
        self._endpoints = endpoints
        self._policy = policy
        self._attempt = Attempt(endpoints, policy, idempotent=True)
        self._decoder = SSEDecoder()
        self._opened_at = 0.0  # when the current stream opened
        self._opened_with: int | None = None  # next_revision once its opening event came

    @property
    def endpoint(self) -> str:
        return self._attempt.endpoint

    @property
    def target(self) -> str:
        """Where the next stream opens: path and query."""
        query = list(self._query)
        if self.next_revision is not None:
            query.append(("start_revision", str(self.next_revision)))
        return "/v1/watch" + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")

    def opened(self, response: httpx.Response, now: float) -> float | None:
        """The answer to a stream's request (its body read, unless it is 200), at time
        ``now`` (seconds): None when the stream is open; else the pause before the next try.
        Raises what a certain refusal stands for (``Compacted``, ``BadRequest``, ...)."""
        pause = self._attempt.answered(response)
        if pause is not None:
            return pause
        raise_for_status(response, self.endpoint, idempotent=True)
        content_type = response.headers.get("content-type", "")
        if response.status_code != 200 or not content_type.startswith("text/event-stream"):
            raise ServerError(
                f"unexpected answer from {self.endpoint}: {response.status_code} {content_type}",
                status=response.status_code,
                endpoint=self.endpoint,
            )
        self._decoder = SSEDecoder()
        self._opened_at, self._opened_with = now, None
        return None

    def connect_failed(self, exc: httpx.TransportError) -> float:
        """A stream's request failed: the pause before the next try (``Unavailable`` once the
        tries ran out)."""
        return self._attempt.transport_failed(exc)

    def feed(self, line: str) -> WatchBatch | None:
        """One line of the stream; the batch it completes, if it is one the caller has not
        seen. ``StreamEnded`` for an ``error`` event."""
        event = self._decoder.feed(line)
        if event is None:
            return None
        try:
            data = json.loads(event.data)
            if event.event == "change":
                batch = watch_batch_from_json(data)
                if self.next_revision is not None and batch.revision < self.next_revision:
                    return None  # seen already, from another member
                self.next_revision = batch.revision + 1
                return batch
            if event.event == "progress":
                self._advance(_revision_in(data, "revision") + 1)
                if self._opened_with is None:  # the opening event: the stream's start
                    self._opened_with = self.next_revision
            elif event.event == "error":
                self._advance(_revision_in(data, "resume_revision"))
                raise StreamEnded(str(data.get("error", "error event")))
        except (ValueError, WireFormatError) as exc:  # JSONDecodeError is a ValueError
            raise ServerError(
                f"malformed {event.event} event from {self.endpoint}: {exc}",
                endpoint=self.endpoint,
            ) from None
        return None  # progress, or an event this client does not know

    def _advance(self, revision: int) -> None:
        if self.next_revision is None or revision > self.next_revision:
            self.next_revision = revision

    def ended(self, reason: str, now: float) -> float:
        """The stream ended (``reason``) at time ``now``: the pause before the next one opens,
        on the next endpoint; ``Unavailable`` once the tries ran out."""
        endpoint = self.endpoint
        moved = self._opened_with is not None and self.next_revision != self._opened_with
        if moved or now - self._opened_at >= WORKED_SECONDS:  # it worked: a new outage
            self._attempt = Attempt(
                self._endpoints, self._policy, idempotent=True, start=self._attempt.index
            )
        self._opened_at, self._opened_with = now, None
        error = Unavailable(f"the watch stream from {endpoint} ended: {reason}", endpoint=endpoint)
        return self._attempt.failed(error)


def stream_timeout(timeout: httpx.Timeout, idle_timeout: float) -> httpx.Timeout:
    """The client's timeouts, but a read may wait ``idle_timeout``: the stream idles."""
    read = idle_timeout if timeout.read is None else max(timeout.read, idle_timeout)
    return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool)
