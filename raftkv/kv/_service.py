"""``KVService``: the key-value store on a running node, without HTTP.

Writes are proposed through the node (forwarded to the leader by Raft when this node follows) and
answered once applied here. Reads are linearizable by default (a ReadIndex barrier first);
``linearizable=False`` reads whatever this node has applied. Every request is checked against the
service's ``Limits`` before anything is proposed.
"""

from __future__ import annotations

from typing import TypeVar

from .._node import Node
from ._commands import encode_delete, encode_put
from ._limits import Limits
from ._results import CompareFailed, DeleteResult, InvalidCommand, KeyValue, PutResult, RangeResult
from ._store import KVStateMachine

__all__ = ["KVService"]


class KVService:
    def __init__(self, node: Node, store: KVStateMachine, limits: Limits | None = None) -> None:
        self.node = node
        self.store = store
        self.limits = limits or Limits()

    async def put(
        self, key: bytes, value: bytes, *, if_revision: int | None = None
    ) -> PutResult | CompareFailed:
        command = encode_put(
            key,
            value,
            if_revision=if_revision,
            max_key_bytes=self.limits.max_key_bytes,
            max_value_bytes=self.limits.max_value_bytes,
        )
        result = await self.node.propose(command)
        return _expect(result, PutResult, CompareFailed)

    async def delete(
        self, key: bytes, *, if_revision: int | None = None
    ) -> DeleteResult | CompareFailed:
        command = encode_delete(
            key, if_revision=if_revision, max_key_bytes=self.limits.max_key_bytes
        )
        result = await self.node.propose(command)
        return _expect(result, DeleteResult, CompareFailed)

    async def get(self, key: bytes, *, linearizable: bool = True) -> KeyValue | None:
        if linearizable:
            await self.node.read_barrier()
        return self.store.get(key)

    async def range(
        self,
        prefix: bytes,
        *,
        after: bytes | None = None,
        limit: int | None = None,
        linearizable: bool = True,
    ) -> RangeResult:
        if linearizable:
            await self.node.read_barrier()
        return self.store.range(prefix, after=after, limit=limit)


A = TypeVar("A")
B = TypeVar("B")


def _expect(result: object, a: type[A], b: type[B]) -> A | B:
    if isinstance(result, (a, b)):
        return result
    # The state machine refusing a command we encoded ourselves is a bug, never user input.
    reason = result.reason if isinstance(result, InvalidCommand) else repr(result)
    raise AssertionError(f"unexpected apply result: {reason}")
