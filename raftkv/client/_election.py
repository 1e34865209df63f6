"""Elections: ``AsyncClient.election`` (and ``Client.election``), as etcd's ``concurrency``.

    async with kv.election("svc/primary", ttl=10) as election:
        leader = await election.campaign("10.0.0.7:8080")     # blocks until elected
        await election.proclaim("10.0.0.7:9090")              # change the value, as leader
        await election.lost()                                 # leadership may be gone
        await election.resign()

    async with kv.election("svc/primary") as election:       # observing needs no lease
        async for leader in election.observe():
            print(leader.text)

Candidates queue as ``raftkv.client._queue`` describes; the leader is the oldest candidate, its
value is what it proclaimed. A campaign holds a lease (granted by the first ``campaign``, kept
alive in the background, revoked when the block ends); ``resign`` gives leadership up and keeps
the lease for another campaign. ``proclaim`` succeeds only while the key the campaign created
is still there, untouched by anyone else (a compare on its revision), so a deposed leader
cannot overwrite its successor's value. ``leader.revision`` grows from leader to leader: a
fencing token for what leaders do.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from .._errors import one_error_unwrapped
from ._errors import Compacted, KeyNotFound, LeaseLost, PreconditionFailed
from ._lease import AsyncLease, open_lease
from ._models import KeyValue, Leader
from ._queue import contender_key, enqueue, first, list_queue, queue_prefix, wait_first
from ._wire import Key, to_bytes

if TYPE_CHECKING:
    from ._async import AsyncClient, AsyncWatch

__all__ = ["AsyncElection", "ElectionObserver", "open_election"]


def _leader(kv: KeyValue | None) -> Leader | None:
    return None if kv is None else Leader(kv.key, kv.value, kv.create_revision)


class AsyncElection:
    def __init__(self, client: AsyncClient, name: Key, ttl: int, nursery: trio.Nursery) -> None:
        self.prefix = queue_prefix(name)
        self.ttl = ttl
        self._client = client
        self._nursery = nursery
        self._lease: AsyncLease | None = None
        self._key: bytes | None = None
        self._revision = 0  # the create revision of our key while we lead or campaign
        self._mod_revision = 0  # ... and its mod revision: what a proclaim compares with
        self._leading: Leader | None = None

    @property
    def is_leader(self) -> bool:
        """Whether we lead, as far as we know (the lease not lost)."""
        return self._leading is not None and self._lease is not None and not self._lease.is_lost

    @property
    def lease(self) -> AsyncLease | None:
        return self._lease

    async def campaign(self, value: Key) -> Leader:
        """Queue as a candidate with ``value``; return once we lead (``LeaseLost`` if our lease
        is lost first). Campaigning again while a candidate (or the leader) changes the
        value."""
        data = to_bytes(value, "value")
        if self._lease is None or self._lease.is_lost:
            self._lease, self._key = await self._nursery.start(self._hold_lease), None
        lease = self._lease
        if self._key is not None:  # a candidate already: change the value
            await self._put(data)
        else:
            self._key = key = contender_key(self.prefix, lease)
            self._revision = self._mod_revision = await enqueue(self._client, key, data, lease)
        key = self._key
        await wait_first(self._client, self.prefix, key, self._revision, lease)
        self._leading = Leader(key, data, self._revision)
        return self._leading

    async def proclaim(self, value: Key) -> Leader:
        """Change the value we lead with; ``LeaseLost`` if we no longer lead."""
        if self._leading is None:
            raise LeaseLost("proclaim needs leadership: campaign first")
        data = to_bytes(value, "value")
        await self._put(data)
        self._leading = Leader(self._leading.key, data, self._revision)
        return self._leading

    async def _put(self, data: bytes) -> None:
        assert self._lease is not None and self._key is not None
        self._lease.check()
        try:
            put = await self._client.put(
                self._key, data, if_revision=self._mod_revision, lease=self._lease.id
            )
        except PreconditionFailed:
            self._leading = None
            raise LeaseLost(f"our candidate key {self._key!r:.80} is gone") from None
        assert put.revision is not None
        self._mod_revision = put.revision

    async def resign(self) -> None:
        """Give leadership (or the candidacy) up; the lease stays for another campaign."""
        key, self._key, self._leading = self._key, None, None
        if key is None:
            return
        with contextlib.suppress(KeyNotFound, PreconditionFailed):  # gone already
            await self._client.delete(key, if_revision=self._mod_revision)

    async def lost(self) -> None:
        """Return once our leadership (or candidacy) may be gone: the lease is lost, or our
        key was deleted."""
        lease, key = self._lease, self._key
        if lease is None or key is None:
            return
        with one_error_unwrapped():
            async with trio.open_nursery() as nursery:

                async def on_loss() -> None:
                    await lease.lost()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(on_loss)
                async with self._client.watch(key, start_revision=self._mod_revision + 1) as w:
                    async for batch in w:
                        if any(e.type == "delete" for e in batch.events):
                            break
                nursery.cancel_scope.cancel()
        self._leading = None

    async def leader(self) -> Leader | None:
        """The current leader (its value is ``leader.value``), or None."""
        kvs, _ = await list_queue(self._client, self.prefix)
        return _leader(first(kvs))

    def observe(self) -> ElectionObserver:
        """The leaders, one after another as they change (the current one first)."""
        return ElectionObserver(self._client, self.prefix)

    async def _hold_lease(self, *, task_status: trio.TaskStatus[AsyncLease]) -> None:
        async with open_lease(self._client, self.ttl) as lease:
            task_status.started(lease)
            await trio.sleep_forever()


class ElectionObserver:
    """``async for leader in election.observe()``: the current leader, then each new one.
    Follows the candidates' keys with a watch, from the revision of a listing."""

    def __init__(self, client: AsyncClient, prefix: bytes) -> None:
        self._client = client
        self._prefix = prefix
        self._kvs: dict[bytes, KeyValue] = {}
        self._watch: AsyncWatch | None = None
        self._last: Leader | None = None

    def __aiter__(self) -> ElectionObserver:
        return self

    async def __aenter__(self) -> ElectionObserver:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __anext__(self) -> Leader:
        while True:
            if self._watch is None:
                kvs, revision = await list_queue(self._client, self._prefix)
                self._kvs = {kv.key: kv for kv in kvs}
                self._watch = self._client.watch(prefix=self._prefix, start_revision=revision + 1)
            else:
                try:
                    batch = await anext(self._watch)
                except Compacted:
                    await self.aclose()  # look again
                    continue
                for event in batch.events:
                    if event.type == "put":
                        self._kvs[event.kv.key] = event.kv
                    else:
                        self._kvs.pop(event.kv.key, None)
            leader = _leader(first(list(self._kvs.values())))
            if leader is not None and leader != self._last:
                self._last = leader
                return leader

    async def aclose(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.aclose()


@asynccontextmanager
async def open_election(
    client: AsyncClient, name: Key, *, ttl: int
) -> AsyncIterator[AsyncElection]:
    with one_error_unwrapped():
        async with trio.open_nursery() as nursery:
            yield AsyncElection(client, name, ttl, nursery)
            nursery.cancel_scope.cancel()  # the lease task: revokes the lease
