"""The blocking client's leases, locks and elections: the async ones (``_lease``, ``_lock``,
``_election``), run by an ``AsyncClient`` on a Trio loop in a background thread (an anyio
blocking portal), so that keep-alives go on while the caller's thread does its work or blocks.

The thread starts with the first lease, lock or election of a ``Client`` and stops when the
client closes; whatever runs there then is cancelled (its leases are revoked).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar

import trio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from .._errors import one_error_unwrapped
from ._async import AsyncClient
from ._election import AsyncElection, ElectionObserver
from ._lease import AsyncLease
from ._lock import AsyncHeldLock
from ._models import Leader
from ._wire import Key

__all__ = ["Election", "HeldLock", "Lease", "Portal"]

T = TypeVar("T")


class Portal:
    """A Trio loop in a background thread, with an ``AsyncClient`` on it."""

    def __init__(self, make_client: Callable[[], AsyncClient]) -> None:
        self._stack = ExitStack()
        self.portal: BlockingPortal = self._stack.enter_context(start_blocking_portal("trio"))
        self.client = self.portal.call(_made, make_client)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.portal.call(fn, *args)

    def context(self, cm: Any) -> AbstractContextManager[Any]:
        return self.portal.wrap_async_context_manager(cm)

    def close(self) -> None:
        try:
            self.portal.call(self.client.aclose)
            self.portal.call(self.portal.stop, True)  # cancel what still runs there
        except RuntimeError:
            pass  # stopped already
        self._stack.close()


async def _made(make_client: Callable[[], AsyncClient]) -> AsyncClient:
    return make_client()  # in the loop's thread, where its connections will live


class Lease:
    """``Client.lease``: a lease kept alive by the background thread while the block runs."""

    def __init__(self, portal: Portal, lease: AsyncLease) -> None:
        self._portal = portal
        self._lease = lease
        self.id = lease.id
        self.ttl = lease.ttl

    def __repr__(self) -> str:
        return f"<Lease {self.id} ttl={self.ttl}>"

    @property
    def is_lost(self) -> bool:
        """Whether the lease may be gone (then it is lost for good)."""
        return bool(self._portal.call(lambda: self._lease.is_lost))

    @property
    def lost_reason(self) -> str | None:
        return self._lease.lost_reason

    def check(self) -> None:
        """``LeaseLost`` if the lease may be gone."""
        self._portal.call(self._lease.check)

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Block until the lease is lost (True) or ``timeout`` seconds passed (False)."""

        async def wait() -> bool:
            with trio.move_on_after(float("inf") if timeout is None else timeout):
                await self._lease.lost()
            return self._lease.is_lost

        return bool(self._portal.call(wait))


class HeldLock:
    """``Client.lock``: the lock while it is held (``key``, fencing ``token``, ``lease``)."""

    def __init__(self, portal: Portal, held: AsyncHeldLock) -> None:
        self.name = held.name
        self.key = held.key
        self.token = held.token
        self.lease = Lease(portal, held.lease)


class Election:
    """``Client.election``: ``AsyncElection``'s methods, blocking."""

    def __init__(self, portal: Portal, election: AsyncElection) -> None:
        self._portal = portal
        self._election = election

    @property
    def is_leader(self) -> bool:
        return bool(self._portal.call(lambda: self._election.is_leader))

    @property
    def lease(self) -> Lease | None:
        lease = self._election.lease
        return None if lease is None else Lease(self._portal, lease)

    def campaign(self, value: Key) -> Leader:
        """Block until we lead with ``value`` (``LeaseLost`` if our lease is lost first)."""
        leader: Leader = self._portal.call(self._election.campaign, value)
        return leader

    def proclaim(self, value: Key) -> Leader:
        leader: Leader = self._portal.call(self._election.proclaim, value)
        return leader

    def resign(self) -> None:
        self._portal.call(self._election.resign)

    def leader(self) -> Leader | None:
        leader: Leader | None = self._portal.call(self._election.leader)
        return leader

    def wait_lost(self) -> None:
        """Block until our leadership (or candidacy) may be gone."""
        self._portal.call(self._election.lost)

    @contextmanager
    def observe(self) -> Iterator[Iterator[Leader]]:
        """``with election.observe() as leaders: for leader in leaders: ...``"""
        with self._portal.context(_observing(self._election.observe())) as leaders:
            yield self._leaders(leaders)

    def _leaders(self, leaders: trio.MemoryReceiveChannel[Leader]) -> Iterator[Leader]:
        while True:
            try:
                leader: Leader = self._portal.call(leaders.receive)
            except trio.EndOfChannel:
                return  # the observer failed: its error comes out of the with block
            yield leader


@asynccontextmanager
async def _observing(
    observer: ElectionObserver,
) -> AsyncIterator[trio.MemoryReceiveChannel[Leader]]:
    """The observer's leaders through a channel, from a task of their own: leaving cancels the
    task, wherever it is (a wait for the next leader, interrupted by Ctrl-C, included)."""
    send, receive = trio.open_memory_channel[Leader](0)

    async def pump() -> None:
        async with send, observer:
            async for leader in observer:
                await send.send(leader)

    with one_error_unwrapped():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            yield receive
            nursery.cancel_scope.cancel()
