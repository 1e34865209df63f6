"""``KVService``: the key-value store on a running node, without HTTP.

Writes are proposed through the node (forwarded to the leader by Raft when this node follows) and
answered once applied here. Reads are linearizable by default (a ReadIndex barrier first);
``linearizable=False`` reads whatever this node has applied. Every request is checked against the
service's ``Limits`` before anything is proposed. Watches are served from this node's own copy
of the history: every member delivers the same events in the same order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

from .._errors import (
    Compacted,
    FutureRevision,
    PermissionDenied,
    Unauthenticated,
    UnknownLease,
)
from .._node import Node
from ._auth_service import DEFAULT_TOKEN_TTL, AuthAdmin
from ._commands import (
    CompactCommand,
    DeletePrefixCommand,
    TxnCommand,
    check_txn,
    encode_command,
    encode_delete,
    encode_put,
)
from ._identity import for_requester
from ._lessor import LeaseLimits, Lessor
from ._limits import Limits, check_prefix
from ._results import (
    AccessRefused,
    CompactRefused,
    CompactResult,
    CompareFailed,
    DeletePrefixResult,
    DeleteResult,
    InvalidCommand,
    KeyValue,
    LeaseNotFound,
    PutResult,
    RangeResult,
    TxnResult,
)
from ._store import KVStateMachine
from ._watch import DEFAULT_BUFFER, Watcher, WatchHub

__all__ = ["KVService"]


class KVService:
    def __init__(
        self,
        node: Node,
        store: KVStateMachine,
        limits: Limits | None = None,
        *,
        watch_buffer: int = DEFAULT_BUFFER,
        lease_limits: LeaseLimits | None = None,
        token_ttl: int = DEFAULT_TOKEN_TTL,
    ) -> None:
        self.node = node
        self.store = store
        self.limits = limits or Limits()
        self.watches = WatchHub(store, buffer=watch_buffer)
        config = node.config
        timeout = config.election_ticks * config.tick_interval
        self.leases = Lessor(self, lease_limits or LeaseLimits.for_election_timeout(timeout))
        self.auth = AuthAdmin(self, token_ttl)

    async def propose(self, command: bytes) -> object:
        """Propose ``command`` for the client this task acts for (``acting_for``), answered
        once applied here; ``Unauthenticated`` or ``PermissionDenied`` if the auth state in
        force when it applied refused it."""
        result = await self.node.propose(for_requester(command))
        if isinstance(result, AccessRefused):
            if result.authenticated:
                raise PermissionDenied("permission denied")
            raise Unauthenticated("authentication required")
        return result

    def close(self, reason: str = "the node is stopping") -> None:
        """End every watch (their callers resume on another member)."""
        self.watches.close(reason)

    # -- writes ----------------------------------------------------------------------------------

    async def put(
        self, key: bytes, value: bytes, *, if_revision: int | None = None, lease: int = 0
    ) -> PutResult | CompareFailed:
        command = encode_put(
            key,
            value,
            if_revision=if_revision,
            lease=lease,
            max_key_bytes=self.limits.max_key_bytes,
            max_value_bytes=self.limits.max_value_bytes,
        )
        result = await self.propose(command)
        if isinstance(result, LeaseNotFound):
            raise UnknownLease(result.lease)
        return _expect(result, PutResult, CompareFailed)

    async def delete(
        self, key: bytes, *, if_revision: int | None = None
    ) -> DeleteResult | CompareFailed:
        command = encode_delete(
            key, if_revision=if_revision, max_key_bytes=self.limits.max_key_bytes
        )
        result = await self.propose(command)
        return _expect(result, DeleteResult, CompareFailed)

    async def delete_prefix(self, prefix: bytes) -> DeletePrefixResult:
        """Delete every key under ``prefix`` (b"": every key) at one revision."""
        check_prefix(prefix, self.limits.max_key_bytes)
        result = await self.propose(encode_command(DeletePrefixCommand(prefix)))
        return _expect(result, DeletePrefixResult, DeletePrefixResult)

    async def txn(self, txn: TxnCommand) -> TxnResult:
        """Evaluate the compares and apply one branch, atomically, at one revision."""
        check_txn(txn, self.limits)
        result = await self.propose(encode_command(txn))
        if isinstance(result, LeaseNotFound):
            raise UnknownLease(result.lease)  # the transaction failed whole
        return _expect(result, TxnResult, TxnResult)

    async def compact(self, revision: int) -> CompactResult:
        """Forget the history before ``revision`` on every member (it stays readable);
        ``Compacted`` if it is compacted already, ``FutureRevision`` past the current one."""
        self._check_compact(revision, self.store.revision, self.store.compact_revision)
        result = await self.propose(encode_command(CompactCommand(revision)))
        if isinstance(result, CompactRefused):
            self._check_compact(revision, result.revision, result.compact_revision)
        return _expect(result, CompactResult, CompactResult)

    @staticmethod
    def _check_compact(revision: int, current: int, compacted: int) -> None:
        if revision > current:
            raise FutureRevision(revision, current)
        if revision <= compacted:
            raise Compacted(revision, compacted)

    # -- reads -----------------------------------------------------------------------------------

    async def get(
        self, key: bytes, *, linearizable: bool = True, revision: int | None = None
    ) -> KeyValue | None:
        if linearizable:
            await self.node.read_barrier()
        return self.store.get(key, revision=revision)

    async def range(
        self,
        prefix: bytes,
        *,
        after: bytes | None = None,
        limit: int | None = None,
        linearizable: bool = True,
        revision: int | None = None,
    ) -> RangeResult:
        if linearizable:
            await self.node.read_barrier()
        return self.store.range(prefix, after=after, limit=limit, revision=revision)

    @asynccontextmanager
    async def watch(
        self,
        *,
        key: bytes | None = None,
        prefix: bytes | None = None,
        start_revision: int | None = None,
        prev_kv: bool = False,
    ) -> AsyncIterator[Watcher]:
        """Watch ``key`` or the keys under ``prefix`` (neither: every key) from
        ``start_revision`` (None: the revision after now, read linearizably).

            async with service.watch(prefix=b"config/") as watcher:
                async for batch in watcher:
                    ...
        """
        if start_revision is None:
            await self.node.read_barrier()
            start_revision = self.store.revision + 1
        async with self.watches.watch(
            key=key, prefix=prefix, start_revision=start_revision, prev_kv=prev_kv
        ) as watcher:
            yield watcher


A = TypeVar("A")
B = TypeVar("B")


def _expect(result: object, a: type[A], b: type[B]) -> A | B:
    if isinstance(result, (a, b)):
        return result
    # The state machine refusing a command we encoded ourselves is a bug, never user input.
    reason = result.reason if isinstance(result, InvalidCommand) else repr(result)
    raise AssertionError(f"unexpected apply result: {reason}")
