"""``AsyncClient``: the async client, for Trio."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx
import trio

from . import _calls as calls
from ._calls import Call, Key
from ._models import DeleteResponse, Member, PutResponse, RangeResponse, Value
from ._retry import Attempt, Endpoints, RetryPolicy
from ._sync import DEFAULT_TIMEOUT

__all__ = ["AsyncClient"]

T = TypeVar("T")


class AsyncClient:
    """``Client``, for Trio tasks: the same methods, awaited.

    >>> async with AsyncClient("http://127.0.0.1:12380") as kv:  # doctest: +SKIP
    ...     await kv.put("greeting", "hello")
    ...     (await kv.get("greeting")).value
    b'hello'

    Pauses between retry rounds use ``trio.sleep``. One client may serve many tasks at once.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: Any = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.endpoints = Endpoints(endpoints)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(timeout=timeout, verify=verify, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        attempt = Attempt(self.endpoints, self.retry, call.idempotent)
        while True:
            endpoint = attempt.endpoint
            pause: float | None
            try:
                response = await self._http.request(
                    call.method, endpoint + call.target, content=call.content, headers=call.headers
                )
            except httpx.TransportError as exc:
                pause = attempt.transport_failed(exc)
            else:
                pause = attempt.answered(response)
                if pause is None:
                    return call.finish(response, endpoint)
            if pause:
                await trio.sleep(pause)

    # -- keys --

    async def get(self, key: Key, *, serializable: bool = False) -> Value:
        """The key's value and mod revision; ``KeyNotFound`` if it does not exist.

        Linearizable unless ``serializable`` (then: whatever the answering node has applied).
        """
        return await self._send(calls.get(key, serializable=serializable))

    async def put(self, key: Key, value: Key, *, if_revision: int | None = None) -> PutResponse:
        """Store ``value``; returns once committed. ``if_revision``: compare-and-swap on the key's
        mod revision (0: create only); ``PreconditionFailed`` when it does not match."""
        return await self._send(calls.put(key, value, if_revision=if_revision))

    async def delete(self, key: Key, *, if_revision: int | None = None) -> DeleteResponse:
        """Delete the key; ``KeyNotFound`` if it does not exist."""
        return await self._send(calls.delete(key, if_revision=if_revision))

    async def get_prefix(
        self,
        prefix: Key = b"",
        *,
        limit: int | None = None,
        after: Key | None = None,
        serializable: bool = False,
    ) -> RangeResponse:
        """Keys starting with ``prefix`` in key order, at most ``limit`` of them (the server's
        default when None); ``after`` continues from the last key of a previous page."""
        return await self._send(
            calls.get_prefix(prefix, limit=limit, after=after, serializable=serializable)
        )

    # -- cluster --

    async def members(self) -> tuple[Member, ...]:
        return await self._send(calls.members())

    async def add_member(self, member_id: int, peer_url: str) -> tuple[Member, ...]:
        """Add a node (as a learner, promoted once caught up); returns the new member list."""
        return await self._send(calls.add_member(member_id, peer_url))

    async def remove_member(self, member_id: int) -> tuple[Member, ...]:
        """Remove a node (it then exits by itself); returns the new member list."""
        return await self._send(calls.remove_member(member_id))

    async def transfer_leadership(self, member_id: int) -> None:
        await self._send(calls.transfer_leadership(member_id))

    async def status(self) -> dict[str, Any]:
        """The answering node's ``/-/status``: id, role, term, leader, indexes, members."""
        return await self._send(calls.status())
