"""``Client``: the blocking client."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _calls as calls
from ._calls import Call, Key
from ._models import DeleteResponse, Member, PutResponse, RangeResponse, Value
from ._retry import Attempt, Endpoints, RetryPolicy

__all__ = ["DEFAULT_TIMEOUT", "Client"]

T = TypeVar("T")

# Connecting fails fast so that another endpoint gets its turn; a request may wait longer
# (a linearizable read or a write waits for a quorum; the server answers 504 after its own
# --request-timeout, 5 s by default).
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


class Client:
    """A raftkv cluster, through the HTTP API of any of its nodes.

    >>> with Client("http://127.0.0.1:12380,http://127.0.0.1:22380") as kv:  # doctest: +SKIP
    ...     kv.put("greeting", "hello")
    ...     kv.get("greeting").value
    b'hello'

    ``endpoints`` is a list of client URLs or one comma-separated string. Requests go to the
    endpoint that answered last and fail over as ``raftkv.client._retry`` describes. Keys and
    values are bytes, or str encoded as UTF-8.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: Any = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = Endpoints(endpoints)
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(timeout=timeout, verify=verify, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        attempt = Attempt(self.endpoints, self.retry, call.idempotent)
        while True:
            endpoint = attempt.endpoint
            pause: float | None
            try:
                response = self._http.request(
                    call.method, endpoint + call.target, content=call.content, headers=call.headers
                )
            except httpx.TransportError as exc:
                pause = attempt.transport_failed(exc)
            else:
                pause = attempt.answered(response)
                if pause is None:
                    return call.finish(response, endpoint)
            if pause:
                time.sleep(pause)

    # -- keys --

    def get(self, key: Key, *, serializable: bool = False) -> Value:
        """The key's value and mod revision; ``KeyNotFound`` if it does not exist.

        Linearizable unless ``serializable`` (then: whatever the answering node has applied).
        """
        return self._send(calls.get(key, serializable=serializable))

    def put(self, key: Key, value: Key, *, if_revision: int | None = None) -> PutResponse:
        """Store ``value``; returns once committed. ``if_revision``: compare-and-swap on the key's
        mod revision (0: create only); ``PreconditionFailed`` when it does not match."""
        return self._send(calls.put(key, value, if_revision=if_revision))

    def delete(self, key: Key, *, if_revision: int | None = None) -> DeleteResponse:
        """Delete the key; ``KeyNotFound`` if it does not exist."""
        return self._send(calls.delete(key, if_revision=if_revision))

    def get_prefix(
        self,
        prefix: Key = b"",
        *,
        limit: int | None = None,
        after: Key | None = None,
        serializable: bool = False,
    ) -> RangeResponse:
        """Keys starting with ``prefix`` in key order, at most ``limit`` of them (the server's
        default when None); ``after`` continues from the last key of a previous page."""
        return self._send(
            calls.get_prefix(prefix, limit=limit, after=after, serializable=serializable)
        )

    # -- cluster --

    def members(self) -> tuple[Member, ...]:
        return self._send(calls.members())

    def add_member(self, member_id: int, peer_url: str) -> tuple[Member, ...]:
        """Add a node (as a learner, promoted once caught up); returns the new member list."""
        return self._send(calls.add_member(member_id, peer_url))

    def remove_member(self, member_id: int) -> tuple[Member, ...]:
        """Remove a node (it then exits by itself); returns the new member list."""
        return self._send(calls.remove_member(member_id))

    def transfer_leadership(self, member_id: int) -> None:
        self._send(calls.transfer_leadership(member_id))

    def status(self) -> dict[str, Any]:
        """The answering node's ``/-/status``: id, role, term, leader, indexes, members."""
        return self._send(calls.status())
