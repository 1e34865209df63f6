"""``StatusBoard``: callers waiting for the node's status to reach some condition."""

from __future__ import annotations

from collections.abc import Callable

import trio

from ._node_config import NodeStatus

__all__ = ["StatusBoard"]


class StatusBoard:
    """Woken after every raft loop iteration, but only while someone waits (the common case
    costs one integer test per iteration)."""

    def __init__(self, status: Callable[[], NodeStatus]) -> None:
        self._status = status
        self._changed = trio.Event()
        self._waiting = 0
        self._closed: Callable[[], BaseException] | None = None

    async def wait(self, predicate: Callable[[NodeStatus], bool]) -> NodeStatus:
        self._waiting += 1
        try:
            while not predicate(status := self._status()):
                if self._closed is not None:
                    raise self._closed()
                await self._changed.wait()
            return status
        finally:
            self._waiting -= 1

    def changed(self) -> None:
        """The raft loop finished an iteration: let waiters look again."""
        if self._waiting:
            self._changed.set()
            self._changed = trio.Event()

    def close(self, error: Callable[[], BaseException]) -> None:
        """The node stopped: waiters whose condition never held get ``error()``."""
        self._closed = error
        self._changed.set()
