"""``SnapshotInstaller``: a snapshot from the leader is read into a new state beside the raft
loop, and only then handed to the core, so that installing it is a swap.

Restoring a large state takes seconds (a million keys: about three), and the Ready contract
wants it restored before ``advance``, with the node taking no input meanwhile. So when an
``InstallSnapshot`` arrives and the state machine can restore a step at a time
(``restore_steps``), the installer keeps the message back, reads the snapshot (its data stays in
its file) into a new state in a task of its own, a slice of a few milliseconds at a time, and
then puts the message back in the inbox (``SnapshotPrepared``). The core steps it as if it had
just arrived; when the Ready asks for the snapshot to be restored, the ``Snapshotter`` installs
the prepared state at once (``take``). A prepared state the core did not use (a stale snapshot)
is dropped at the end of the loop iteration (``settle``).

Meanwhile the node answers everything else, heartbeats included, so it stays a follower. Only
the appends of the snapshot's sender are dropped (dropping is always safe): this node could not
accept them yet, and its refusal would make the leader send the snapshot all over again. A
snapshot that turns out damaged is dropped with an error; the leader sends it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import IO, Any

import trio

from ._codec import CodecError
from ._envelope import MemberTables, read_snapshot_head
from ._errors import CorruptSnapshot
from ._gc import GcTuning
from ._inbox import InboxItem, SnapshotPrepared
from ._node_config import NodeStatistics
from ._snapdata import open_snapshot_data
from ._statemachine import StateMachine, restores_by
from .core import AppendEntries, InstallSnapshot, SnapshotMetadata
from .storage import Storage
from .transport import Inbound

__all__ = ["PreparedState", "SnapshotInstaller"]

log = logging.getLogger("raftkv.node")

SLICE_SECONDS = 0.002  # how long a preparing task runs before letting the loop in


@dataclass(frozen=True, slots=True)
class PreparedState:
    metadata: SnapshotMetadata
    tables: MemberTables
    install: Callable[[], None]  # replaces the state machine's state with the new one


@dataclass(slots=True)
class _Preparing:
    metadata: SnapshotMetadata
    sender: int
    scope: trio.CancelScope


class SnapshotInstaller:
    def __init__(
        self,
        node_id: int,
        state_machine: StateMachine,
        stats: NodeStatistics,
        gc_tuning: GcTuning | None = None,
    ) -> None:
        self.id = node_id
        self._gc = gc_tuning or GcTuning(enabled=False)
        self._steps: Callable[[IO[bytes]], Generator[None, None, Callable[[], None]]] | None = (
            getattr(state_machine, "restore_steps", None)
            if restores_by(state_machine, "restore_steps")
            else None
        )
        self._stats = stats
        self._preparing: _Preparing | None = None
        self._ready: PreparedState | None = None
        self._tasks: trio.Nursery | None = None
        self._submit: Callable[[InboxItem], Awaitable[None]] | None = None

    @staticmethod
    def spool_from(transport: object, storage: Storage) -> None:
        """A transport that can spool received snapshots writes them through the storage's
        sinks, straight into their files (TcpTransport); others hand them over in memory."""
        spool = getattr(transport, "spool_snapshots", None)
        if spool is not None:
            spool(storage.begin_snapshot)

    def start(self, tasks: trio.Nursery, submit: Callable[[InboxItem], Awaitable[None]]) -> None:
        """Where preparing tasks run, and how they hand their message back (the inbox)."""
        self._tasks, self._submit = tasks, submit

    def handler(self, handle: Callable[[InboxItem], None]) -> Callable[[InboxItem], None]:
        """``handle`` (the intake) with the installer in front of it."""

        def handle_item(item: InboxItem) -> None:
            if type(item) is Inbound and self.intercept(item):
                return
            if type(item) is SnapshotPrepared:
                if self._preparing is not None and self._preparing.metadata == item.state.metadata:
                    self._preparing = None
                self._ready = item.state
                handle(item.inbound)
                return
            handle(item)

        return handle_item

    def intercept(self, item: Inbound) -> bool:
        """Whether the installer takes ``item`` (a snapshot to prepare, or an append it holds
        back meanwhile) instead of the core."""
        m = item.message
        preparing = self._preparing
        if type(m) is AppendEntries:
            return preparing is not None and m.src == preparing.sender
        if type(m) is not InstallSnapshot or self._steps is None or self._tasks is None:
            return False
        meta = m.snapshot.metadata
        if preparing is not None:
            if preparing.metadata == meta:
                return True  # sent again while we read it: the first copy will do
            preparing.scope.cancel()  # a newer one (or another leader's): read that instead
        scope = trio.CancelScope()
        self._preparing = _Preparing(meta, m.src, scope)
        self._tasks.start_soon(self._prepare, item, scope)
        return True

    async def _prepare(self, item: Inbound, scope: trio.CancelScope) -> None:
        assert isinstance(item.message, InstallSnapshot) and self._steps is not None
        snapshot = item.message.snapshot
        started = time.perf_counter()
        with scope:
            try:
                with open_snapshot_data(snapshot) as stream:
                    tables, app = read_snapshot_head(stream)
                    # No collections meanwhile: reading makes a great many objects and no
                    # cycles; collections would walk the half-built state again and again.
                    with self._gc.paused():
                        install = await _run_in_slices(self._steps(app))
            except (CorruptSnapshot, CodecError, OSError) as exc:
                log.error(  # noqa: TRY400 - a damaged snapshot, named: no traceback to show
                    "node %d: the snapshot at %d from %d cannot be read: %s; dropped",
                    self.id,
                    snapshot.metadata.index,
                    item.message.src,
                    exc,
                )
                if self._preparing is not None and self._preparing.scope is scope:
                    self._preparing = None
                return
            # A newer snapshot may have replaced this one while it was read in one slice,
            # without a checkpoint to notice: it must not be handed on then.
            await trio.lowlevel.checkpoint_if_cancelled()
            self._stats.snapshot_prepare_seconds = time.perf_counter() - started
            assert self._submit is not None
            state = PreparedState(snapshot.metadata, tables, install)
            await self._submit(SnapshotPrepared(item, state))

    def take(self, metadata: SnapshotMetadata) -> PreparedState | None:
        """The state prepared for the snapshot ``metadata`` describes, if any (once)."""
        ready = self._ready
        if ready is None or ready.metadata != metadata:
            return None
        self._ready = None
        return ready

    def settle(self) -> None:
        """End of a loop iteration: a prepared state not installed by now never will be."""
        self._ready = None


async def _run_in_slices(steps: Generator[None, None, Any]) -> Any:
    """Drive ``steps`` to its return value, letting other tasks run every SLICE_SECONDS."""
    deadline = time.perf_counter() + SLICE_SECONDS
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        if time.perf_counter() >= deadline:
            await trio.sleep(0)
            deadline = time.perf_counter() + SLICE_SECONDS
