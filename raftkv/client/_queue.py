"""A queue of contenders under a prefix, as etcd's ``concurrency`` package keeps one: what locks
and elections share.

Each contender owns one key, ``<name>/<its lease id in hex>``, created only if absent and
attached to its lease, so it lives exactly as long as the lease. The queue's order is the keys'
``create_revision``: the first is the holder (of the lock, or the leadership), and its
create revision grows from holder to holder (a fencing token). A waiter watches only the key
just before its own for deletion, then looks again: when a holder goes, one waiter wakes, not
all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import trio

from .._errors import one_error_unwrapped
from ._errors import Compacted, LeaseLost, OutcomeUnknown, PreconditionFailed
from ._lease import AsyncLease
from ._models import KeyValue
from ._wire import Key, key_bytes

if TYPE_CHECKING:
    from ._async import AsyncClient

__all__ = ["contender_key", "enqueue", "first", "list_queue", "queue_prefix", "wait_first"]

_CREATE_TRIES: Final = 4
_PAGE: Final = 1000


def queue_prefix(name: Key) -> bytes:
    return key_bytes(name) + b"/"


def contender_key(prefix: bytes, lease: AsyncLease) -> bytes:
    return prefix + f"{lease.id:x}".encode()


async def enqueue(client: AsyncClient, key: bytes, value: bytes, lease: AsyncLease) -> int:
    """Create ``key`` (attached to ``lease``) unless it exists; its create revision. A create
    whose answer was lost is sent again: a ``412`` then says it applied (the key is ours: its
    name is our lease's id)."""
    unknown: OutcomeUnknown | None = None
    for _ in range(_CREATE_TRIES):
        lease.check()
        try:
            created = await client.put(key, value, if_revision=0, lease=lease.id)
        except OutcomeUnknown as exc:
            unknown = exc
            continue
        except PreconditionFailed as exc:
            if exc.mod_revision:
                return exc.mod_revision  # ours, never modified: created at that revision
            return (await client.get(key)).mod_revision or 0
        assert created.revision is not None
        return created.revision
    assert unknown is not None
    raise unknown


async def list_queue(client: AsyncClient, prefix: bytes) -> tuple[list[KeyValue], int]:
    """Every key under ``prefix`` (one revision, page by page), and that revision."""
    kvs: list[KeyValue] = []
    after: bytes | None = None
    revision: int | None = None
    while True:
        page = await client.get_prefix(prefix, limit=_PAGE, after=after, revision=revision)
        revision = revision or page.revision
        kvs += page.kvs
        if not page.more or not page.kvs:
            return kvs, revision
        after = page.kvs[-1].key


def first(kvs: Sequence[KeyValue]) -> KeyValue | None:
    return min(kvs, key=lambda kv: kv.create_revision, default=None)


async def wait_first(
    client: AsyncClient, prefix: bytes, key: bytes, revision: int, lease: AsyncLease
) -> None:
    """Return once ``key`` (created at ``revision``) is the first of the queue; ``LeaseLost`` if
    the lease is lost or the key is gone meanwhile."""
    while True:
        lease.check()
        kvs, now = await list_queue(client, prefix)
        mine = next((kv for kv in kvs if kv.key == key), None)
        if mine is None or mine.create_revision != revision:
            raise LeaseLost(f"the key {key!r:.80} is gone: its lease {lease.id} expired")
        before = [kv for kv in kvs if kv.create_revision < revision]
        if not before:
            return
        ahead = max(before, key=lambda kv: kv.create_revision)
        await _until_deleted(client, ahead.key, now + 1, lease)


async def _until_deleted(client: AsyncClient, key: bytes, start: int, lease: AsyncLease) -> None:
    """Return once ``key`` is deleted at or after revision ``start`` (or the history needed was
    compacted: look again), or the lease is lost."""
    with one_error_unwrapped():
        async with trio.open_nursery() as nursery:

            async def cancel_on_loss() -> None:
                await lease.lost()
                nursery.cancel_scope.cancel()

            nursery.start_soon(cancel_on_loss)
            try:
                async with client.watch(key, start_revision=start) as watch:
                    async for batch in watch:
                        if any(e.type == "delete" for e in batch.events):
                            break
            except Compacted:
                pass
            nursery.cancel_scope.cancel()
