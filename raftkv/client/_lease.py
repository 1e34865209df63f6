"""Leases kept alive in the background: ``AsyncClient.lease`` (``Client.lease`` runs it on a
background thread).

    async with kv.lease(ttl=10) as lease:
        await kv.put("svc/me", "up", lease=lease.id)
        ...                       # lease.check() raises LeaseLost once it may be gone

The lease is granted on entry (with an id chosen here, so that a grant whose answer was lost
can be sent again: a ``409`` then says the first one applied), renewed every third of its TTL by
a task of its own, and revoked on exit (its keys with it), also when the block raises or is
cancelled. A keep-alive that fails (a node down or paused, no leader yet) is sent again at once
to the next endpoint, each try cut short so that several fit in the time left.

When it is lost is decided on this side, conservatively: a keep-alive sent at ``t`` and answered
renews the lease until at least ``t + ttl`` by the leader's clock, so the lease is known to live
until then and no longer. Past that time without an answer, or on a ``404`` (it expired or was
revoked), it is lost for good: ``is_lost``, ``await lease.lost()``, ``lease.check()``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

import trio

from .._errors import one_error_unwrapped
from ._errors import ClientError, Conflict, LeaseLost, LeaseNotFound, OutcomeUnknown
from ._models import LeaseGrant

if TYPE_CHECKING:
    from ._async import AsyncClient

__all__ = ["AsyncLease", "open_lease"]

log = logging.getLogger("raftkv.client")

_MAX_ID: Final = (1 << 63) - 1
_GRANT_TRIES: Final = 4  # grants sent again after an unknown outcome
_RETRY_PAUSE: Final = 0.05  # seconds between keep-alive tries
_REVOKE_SECONDS: Final = 5.0  # the most a revocation on exit may take


class AsyncLease:
    """A lease while its ``async with`` block runs; ``id`` and ``ttl`` (seconds granted)."""

    def __init__(self, client: AsyncClient, grant: LeaseGrant, sent: float) -> None:
        self.id = grant.id
        self.ttl = grant.ttl
        self._client = client
        # Invariant: the lease lives until _deadline by the leader's clock, as far as we know.
        self._renewed = sent
        self._deadline = sent + grant.ttl
        self._lost = trio.Event()
        self.lost_reason: str | None = None

    def __repr__(self) -> str:
        state = f"lost: {self.lost_reason}" if self._lost.is_set() else "alive"
        return f"<AsyncLease {self.id} ttl={self.ttl} {state}>"

    @property
    def is_lost(self) -> bool:
        """Whether the lease may be gone (then it is lost for good)."""
        if not self._lost.is_set() and trio.current_time() >= self._deadline:
            self._lose(f"no keep-alive was answered within its TTL of {self.ttl} s")
        return self._lost.is_set()

    def check(self) -> None:
        """``LeaseLost`` if the lease may be gone."""
        if self.is_lost:
            raise LeaseLost(f"lease {self.id} is lost: {self.lost_reason}")

    async def lost(self) -> None:
        """Return once the lease is lost."""
        while not self.is_lost:  # (a renewal moves the deadline on)
            with trio.move_on_at(self._deadline):
                await self._lost.wait()

    def _lose(self, reason: str) -> None:
        if not self._lost.is_set():
            self.lost_reason = reason
            self._lost.set()
            log.info("lease %d lost: %s", self.id, reason)

    async def _keep_alive(self) -> None:
        while not self._lost.is_set():
            await trio.sleep_until(self._renewed + self.ttl / 3)
            await self._renew()

    async def _renew(self) -> None:
        """One renewal, tried on endpoint after endpoint until it is answered or the lease is
        lost."""
        endpoints = self._client.endpoints
        try_seconds = max(0.5, self.ttl / 6)
        while not self.is_lost:
            sent = trio.current_time()
            with trio.move_on_at(min(self._deadline, sent + try_seconds)):
                try:
                    ttl = await self._client.keepalive(self.id)
                except LeaseNotFound:
                    self._lose("it expired or was revoked")
                    return
                except ClientError as exc:
                    log.debug("keep-alive of lease %d failed: %s", self.id, exc)
                else:
                    self._renewed, self._deadline = sent, sent + ttl
                    return
            endpoints.preferred = (endpoints.preferred + 1) % len(endpoints.urls)
            await trio.sleep(_RETRY_PAUSE)

    async def _revoke(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(_REVOKE_SECONDS):
            try:
                await self._client.revoke_lease(self.id)
            except LeaseNotFound:
                pass  # expired already
            except ClientError as exc:  # it expires by itself within its TTL
                log.info("revoking lease %d failed (it expires within its TTL): %s", self.id, exc)
        self._lose("revoked")


async def _grant(client: AsyncClient, ttl: int, lease: int | None) -> tuple[LeaseGrant, float]:
    """The grant, and when it was first sent (the lease lives at least ``ttl`` from then)."""
    chosen = lease if lease is not None else secrets.randbelow(_MAX_ID) + 1
    first_sent = trio.current_time()
    unknown: OutcomeUnknown | None = None
    for _ in range(_GRANT_TRIES):
        try:
            return await client.grant_lease(ttl, id=chosen), first_sent
        except OutcomeUnknown as exc:
            unknown = exc  # it may have applied: send it again, and a 409 will say so
        except Conflict:
            if unknown is None:
                raise  # the id was taken before we asked
            return LeaseGrant(chosen, ttl), first_sent
    assert unknown is not None
    raise unknown


@asynccontextmanager
async def open_lease(
    client: AsyncClient, ttl: int, *, id: int | None = None
) -> AsyncIterator[AsyncLease]:
    """A lease of ``ttl`` seconds kept alive while the block runs, revoked after it."""
    grant, sent = await _grant(client, ttl, id)
    lease = AsyncLease(client, grant, sent)
    try:
        with one_error_unwrapped():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lease._keep_alive)
                yield lease
                nursery.cancel_scope.cancel()
    finally:
        await lease._revoke()
