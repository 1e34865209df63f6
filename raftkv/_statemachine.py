"""The ``StateMachine`` protocol: what a replicated application provides to ``open_node``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["StateMachine", "restores_by"]


@runtime_checkable
class StateMachine(Protocol):
    """A deterministic state machine. Every replica applies the same commands in the same order.

    ``apply`` must be deterministic and must not raise for a bad command: return an error value
    instead (every replica must reach the same state). Its return value is handed to whoever
    proposed the command, on the node it was proposed on.

    Optionally, ``snapshot_chunks()`` returns an iterator of bytes that join to what
    ``snapshot()`` would return now, taking only a cheap view up front (``KVStateMachine``
    reads its live history, copying nothing). The node then serializes large states a chunk at
    a time in the background instead of stopping its raft loop for the whole ``snapshot()``;
    it closes the iterator when done (if it has ``close``).

    Optionally too, ``restore_from(stream)`` restores from a binary stream (a snapshot's data
    stays in its file), and ``restore_steps(stream)`` does so a step at a time: a generator
    whose every ``next()`` does a bounded amount of work, returning a function that installs
    the result at once. The node then reads a snapshot from the leader into a new state beside
    its raft loop (``_installer``). A subclass that overrides ``restore`` but not these is
    restored by its ``restore`` (``restores_by``).
    """

    def apply(self, index: int, command: bytes) -> object: ...

    def snapshot(self) -> bytes:
        """The whole state, as of the last applied command."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the whole state with a snapshot's."""
        ...


def restores_by(state_machine: object, name: str) -> bool:
    """Whether the node should restore ``state_machine`` with its optional method ``name``
    (``restore_from``, ``restore_steps``): it has one, and ``restore`` is not overridden in a
    class more derived than the one defining it (that override would be bypassed)."""
    if getattr(state_machine, name, None) is None:
        return False
    mro = type(state_machine).__mro__
    owner = next(i for i, c in enumerate(mro) if name in c.__dict__)
    restore = next((i for i, c in enumerate(mro) if "restore" in c.__dict__), len(mro))
    return owner <= restore
