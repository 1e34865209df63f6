"""Locks: ``AsyncClient.lock`` (and ``Client.lock``), fair, held under a lease, with a fencing
token.

    async with kv.lock("jobs/nightly", ttl=10) as held:
        await storage.write(data, fencing_token=held.token)

Each contender queues as ``raftkv.client._queue`` describes (FIFO by creation revision, each
waiter watching only its predecessor). The lock is held once the contender's key is the oldest
under the name; it is released on exit (the lease revoked, which deletes the key), also when the
block raises or is cancelled, and also while still waiting.

``held.token`` is the key's create revision: it strictly increases from holder to holder. A lock
service cannot stop a holder that is paused (a stop-the-world pause, a suspended VM, SIGSTOP)
past its TTL from waking up and going on as if it still held the lock, while another client
holds it already. So a resource the lock protects must check the token: refuse a request whose
token is lower than the highest one it has seen (docs/coordination.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._lease import AsyncLease, open_lease
from ._queue import contender_key, enqueue, queue_prefix, wait_first
from ._wire import Key

if TYPE_CHECKING:
    from ._async import AsyncClient

__all__ = ["AsyncHeldLock", "open_lock"]


@dataclass(frozen=True, slots=True)
class AsyncHeldLock:
    """A lock while it is held: its ``key``, the fencing ``token`` and the ``lease`` it is held
    under (``held.lease.check()`` raises ``LeaseLost`` once it may be held by another)."""

    name: bytes
    key: bytes
    token: int
    lease: AsyncLease


@asynccontextmanager
async def open_lock(client: AsyncClient, name: Key, *, ttl: int) -> AsyncIterator[AsyncHeldLock]:
    prefix = queue_prefix(name)
    async with open_lease(client, ttl) as lease:
        key = contender_key(prefix, lease)
        token = await enqueue(client, key, b"", lease)
        await wait_first(client, prefix, key, token, lease)
        yield AsyncHeldLock(prefix[:-1], key, token, lease)
