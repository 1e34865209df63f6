"""The key-value service: what the HTTP routes do, without HTTP.

Writes are proposed through the node (forwarded to the leader by Raft when this node follows) and
answered once applied here. Reads are linearizable by default (a ReadIndex barrier first);
``linearizable=False`` reads whatever this node has applied. Membership changes and leadership
transfer must run on the leader: ``NotLeader`` tells the HTTP layer to forward them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import raftkv
from raftkv._kv import (
    CompareFailed,
    DeleteResult,
    InvalidCommand,
    KeyValue,
    KVStateMachine,
    PutResult,
    RangeResult,
    encode_delete,
    encode_put,
)

__all__ = ["KVService", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    max_key_bytes: int = 1024
    max_value_bytes: int = 3 * 512 * 1024
    max_list_limit: int = 10_000


class KVService:
    def __init__(self, node: raftkv.Node, kv: KVStateMachine, limits: Limits) -> None:
        self.node = node
        self.kv = kv
        self.limits = limits

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
        return self.kv.get(key)

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
        return self.kv.range(prefix, after=after, limit=limit)


A = TypeVar("A")
B = TypeVar("B")


def _expect(result: object, a: type[A], b: type[B]) -> A | B:
    if isinstance(result, (a, b)):
        return result
    # The state machine refusing a command we encoded ourselves is a bug, never user input.
    reason = result.reason if isinstance(result, InvalidCommand) else repr(result)
    raise AssertionError(f"unexpected apply result: {reason}")
