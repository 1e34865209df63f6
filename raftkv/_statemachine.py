"""The ``StateMachine`` protocol: what a replicated application provides to ``open_node``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["StateMachine"]


@runtime_checkable
class StateMachine(Protocol):
    """A deterministic state machine. Every replica applies the same commands in the same order.

    ``apply`` must be deterministic and must not raise for a bad command: return an error value
    instead (every replica must reach the same state). Its return value is handed to whoever
    proposed the command, on the node it was proposed on.

    Optionally, ``snapshot_chunks()`` returns an iterator of bytes that join to what
    ``snapshot()`` would return now, taking only a cheap view up front (``KVStateMachine``
    copies its index, not its values). The node then serializes large states a chunk at a time
    in the background instead of stopping its raft loop for the whole ``snapshot()``.
    """

    def apply(self, index: int, command: bytes) -> object: ...

    def snapshot(self) -> bytes:
        """The whole state, as of the last applied command."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's."""
        ...
