"""The Trio runtime: ``open_node`` puts a ``RawNode`` to work with a storage, a transport and a
state machine.

One task, the raft loop, owns the ``RawNode``, the state machine and the log store; everything
else talks to it through one bounded memory channel (the inbox), and peers' messages come
straight from the transport's events channel. Each loop iteration takes everything waiting in
both (so many proposals and reads share one batch), ticks when the tick is due, and then handles
every ``Ready`` in the contract's order::

    transport.send(rd.messages)            # a leader's appends may travel before its fsync
    await storage.save(...)                # durable first: one fsync for the whole batch
    transport.send(rd.persisted_messages)  # only then promise anything to peers
    apply committed entries                # wake the proposers waiting on this node
    raw.advance(ready)

The loop lives in the node's nursery; an error in it (a failed fsync, a broken state machine)
surfaces from ``open_node``, and every waiter is woken (``NodeClosed``, or ``OutcomeUnknown``
for a write that was already handed to Raft).

What the loop delegates, each to the one object that owns it: the channel from callers
(``Inbox``), turning what arrives into ``RawNode`` inputs (``Intake``), waiting callers
(``Waiters``), members, their URLs and learner promotion (``Membership``), applying committed
entries (``Applier``), snapshots (``Snapshotter``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from ._applier import Applier
from ._errors import NodeClosed, NodeFailed, OutcomeUnknown, ProposalDropped, innermost
from ._inbox import (
    ConfChangeRequest,
    Inbox,
    ProposeRequest,
    ReadRequest,
    TransferRequest,
)
from ._intake import Intake
from ._membership import Membership
from ._node_config import NodeConfig, NodeStatistics, NodeStatus
from ._snapshotter import Snapshotter
from ._statemachine import StateMachine
from ._waiters import Waiter, Waiters
from .core import (
    ConfChange,
    ConfChangeType,
    MemoryLogStore,
    RawNode,
    Ready,
    Role,
    split_early_messages,
)
from .storage import Storage
from .transport import Transport

__all__ = ["Node"]

log = logging.getLogger("raftkv.node")

T = TypeVar("T")


class Node:
    """A running Raft node. Create it with ``open_node``; every method is safe to call from any
    task of the same Trio run."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        storage: Storage,
        transport: Transport,
        state_machine: StateMachine,
        log_store: MemoryLogStore,
    ) -> None:
        self.config = config
        self.id = config.id
        self._storage = storage
        self._transport = transport
        self._sm = state_machine
        self._log_store = log_store
        self._stats = NodeStatistics()
        self._membership = Membership(config.id, transport)
        self._snapshotter = Snapshotter(
            config,
            storage=storage,
            log_store=log_store,
            state_machine=state_machine,
            membership=self._membership,
            statistics=self._stats,
        )
        snapshot = log_store.snapshot()
        if not snapshot.is_empty:  # the state machine starts from the newest snapshot
            self._snapshotter.restore(snapshot.data, snapshot.metadata.index)
        seed = config.seed if config.seed is not None else random.SystemRandom().randrange(1 << 62)
        raw = self._raw = RawNode(
            config.raft_config(), log_store, random.Random(seed), applied=snapshot.metadata.index
        )
        self._waiters = Waiters()
        self._intake = Intake(
            config.id,
            raw=raw,
            waiters=self._waiters,
            snapshotter=self._snapshotter,
            statistics=self._stats,
        )
        self._applier = Applier(
            config.id,
            raw=raw,
            state_machine=state_machine,
            membership=self._membership,
            snapshotter=self._snapshotter,
            waiters=self._waiters,
            statistics=self._stats,
        )
        self._inbox = Inbox(config.inbox_size, transport.events)
        self._ticks = 0
        self._removed_event = trio.Event()
        # Woken after every loop iteration while someone waits in wait_status().
        self._status_changed = trio.Event()
        self._status_waiters = 0
        self._closed = False
        self._close_error = NodeClosed("the node is shut down")
        self._tasks: trio.Nursery | None = None
        self._leader: int | None = None

    # -- public API ------------------------------------------------------------------------------

    @property
    def state_machine(self) -> StateMachine:
        return self._sm

    @property
    def removed(self) -> bool:
        return self._removed_event.is_set()

    def statistics(self) -> NodeStatistics:
        """Counters and latency histograms since the node started (live, not a copy)."""
        return self._stats

    async def wait_removed(self) -> None:
        """Return once this node learned that it was removed from the cluster."""
        await self._removed_event.wait()

    def raft_position(self) -> tuple[int, int]:
        """(applied index, term) right now: what a response from this node reflects."""
        return self._raw.applied, self._raw.term

    def status(self) -> NodeStatus:
        """The node's state right now."""
        s = self._raw.status()
        return NodeStatus.of(s, self._membership.statuses(s), removed=s.removed or self.removed)

    async def wait_status(self, predicate: Callable[[NodeStatus], bool]) -> NodeStatus:
        """Wait until ``predicate(status)`` holds (use with a Trio deadline)."""
        self._status_waiters += 1
        try:
            while not predicate(status := self.status()):
                if self._closed:
                    raise self._closed_error()
                await self._status_changed.wait()
            return status
        finally:
            self._status_waiters -= 1

    async def wait_leader(self) -> int:
        """Wait until this node knows a leader; return its id."""
        status = await self.wait_status(lambda s: s.leader is not None)
        assert status.leader is not None
        return status.leader

    async def propose(self, command: bytes, *, timeout: float | None = None) -> object:
        """Replicate ``command``; return the state machine's result once it is committed and
        applied on this node.

        Raises ``ProposalDropped`` (``NotLeader`` when no leader is known) if it certainly did not
        enter the log, ``OutcomeUnknown`` if we stopped waiting without knowing (a timeout, or the
        node stopping meanwhile), ``NodeClosed`` if the node was stopped before the call.
        """
        self._check_open()
        seq, waiter = self._waiters.new_proposal()
        deadline = trio.current_time() + (timeout or self.config.request_timeout)
        try:
            await self._inbox.enqueue(ProposeRequest(seq, command, waiter), deadline)
            with trio.move_on_at(deadline):
                return await waiter.outcome()
            raise OutcomeUnknown(
                "the write was proposed but not applied in time; it may still apply"
            )
        finally:
            self._waiters.proposals.pop(seq, None)

    async def read_barrier(self, *, timeout: float | None = None) -> int:
        """Wait until this node has applied everything committed when the call began
        (ReadIndex); return the read index. Reads made right after it are linearizable."""
        self._check_open()
        waiter = Waiter()
        try:
            with trio.fail_after(timeout or self.config.request_timeout):
                await self._inbox.submit(ReadRequest(waiter))
                index: int = await waiter.wait()
                return index
        except trio.TooSlowError:
            raise ProposalDropped(
                "no quorum confirmed the read in time; it is safe to retry"
            ) from None

    async def read(self, query: Callable[[Any], T], *, timeout: float | None = None) -> T:
        """A linearizable read: ``query(state_machine)`` after a ReadIndex barrier."""
        await self.read_barrier(timeout=timeout)
        return query(self._sm)

    def read_serializable(self, query: Callable[[Any], T]) -> T:
        """A local read of whatever this node has applied: fast, possibly stale."""
        return query(self._sm)

    async def add_member(
        self, node_id: int, peer_url: str, *, learner: bool = True, timeout: float | None = None
    ) -> dict[int, str]:
        """Add a member (as a learner by default: promoted automatically once caught up).
        Leader only; returns the member table once the change is applied here."""
        kind = ConfChangeType.ADD_LEARNER if learner else ConfChangeType.ADD_VOTER
        return await self._conf_change(
            ConfChange(kind, node_id, peer_url.encode()), timeout=timeout
        )

    async def remove_member(self, node_id: int, *, timeout: float | None = None) -> dict[int, str]:
        """Remove a member (leader only); returns the member table once applied here."""
        return await self._conf_change(
            ConfChange(ConfChangeType.REMOVE_NODE, node_id), timeout=timeout
        )

    async def transfer_leadership(self, to: int, *, timeout: float | None = None) -> None:
        """Hand leadership to ``to``; returns once this node sees ``to`` as the leader."""
        self._check_open()
        waiter = Waiter()
        try:
            with trio.fail_after(timeout or self.config.request_timeout):
                await self._inbox.submit(TransferRequest(to, waiter))
                await waiter.wait()
        except trio.TooSlowError:
            raise ProposalDropped(f"leadership did not move to {to} in time") from None

    # -- internals: requests ---------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_error()

    async def _conf_change(self, change: ConfChange, *, timeout: float | None) -> dict[int, str]:
        self._check_open()
        waiter = Waiter()
        try:
            with trio.fail_after(timeout or self.config.request_timeout):
                await self._inbox.submit(ConfChangeRequest(change, waiter))
                members: dict[int, str] = await waiter.outcome()
                return members
        except trio.TooSlowError:
            raise OutcomeUnknown(
                "the membership change was proposed but not applied in time"
            ) from None

    # -- internals: the raft loop ----------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as tasks:
                self._tasks = tasks
                await self._loop(task_status)
                tasks.cancel_scope.cancel()  # a snapshot still being built is of no use now
        except Exception as exc:  # the loop failed (storage, state machine): not a loop here
            error = NodeFailed(innermost(exc))
            self._shutdown(str(error), error)
            raise

    async def _loop(self, task_status: trio.TaskStatus[None]) -> None:
        interval = self.config.tick_interval
        next_tick = trio.current_time() + interval
        task_status.started()
        while not self._removed_event.is_set():
            handle = self._intake.handle
            if not self._inbox.drain(handle):
                await self._inbox.wait(next_tick, handle)
                self._inbox.drain(handle)
            now = trio.current_time()
            if now >= next_tick:
                # Under load ticks are late rather than bunched: time only slows down.
                next_tick = max(next_tick + interval, now)
                self._tick()
            self._intake.send_reads()
            while self._raw.has_ready():
                await self._handle_ready(self._raw.ready())
            await self._after_readies()
        self._shutdown("this node was removed from the cluster")

    def _tick(self) -> None:
        self._raw.tick()
        self._ticks += 1
        self._membership.promote_caught_up_learner(self._raw, self.config.promote_lag)
        config = self.config
        self._membership.maybe_publish(
            self._raw, config.client_url, self._ticks, config.election_ticks
        )

    async def _after_readies(self) -> None:
        await self._snapshotter.save_built()
        assert self._tasks is not None
        self._snapshotter.maybe_start(
            self._raw.applied, self._raw.conf_state, self._tasks, self._inbox.submit
        )
        if self._status_waiters:
            self._status_changed.set()
            self._status_changed = trio.Event()
        if self._raw.removed:
            log.info("node %d applied its own removal; stopping", self.id)
            self._removed_event.set()

    async def _handle_ready(self, rd: Ready) -> None:
        self._stats.ready_batches += 1
        if not rd.must_sync and rd.snapshot is None and not rd.entries:
            # Only the commit index moved: nothing said or applied now depends on a new
            # durable write, so answer the waiting clients first and record the commit after
            # (a lost commit index is relearned from the leader).
            if rd.messages:
                self._transport.send(rd.messages)
            self._applier.apply_ready(rd)
            self._raw.advance(rd)
            if rd.hard_state is not None:
                await self._persist(rd)
        else:
            # A leader's appends may travel while its own disk write is in flight (§10.2.1);
            # votes and acknowledgements wait until what they promise is durable.
            early, late = split_early_messages(rd.messages)
            if early:
                self._transport.send(early)
                # Let the transport put them on the wire before a (blocking) fsync starts.
                await trio.lowlevel.cancel_shielded_checkpoint()
            await self._persist(rd)
            if late:
                self._transport.send(late)
            self._applier.apply_ready(rd)
            self._raw.advance(rd)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.leader, rd.soft_state.role)
        self._waiters.release_reads(self._raw.applied)

    async def _persist(self, rd: Ready) -> None:
        if rd.snapshot is None and not rd.entries and rd.hard_state is None:
            return
        started = trio.current_time()
        await self._storage.save(
            hard_state=rd.hard_state,
            entries=rd.entries,
            snapshot=rd.snapshot,
            sync=rd.must_sync,
        )
        self._stats.persist_latency.observe(trio.current_time() - started)
        store = self._log_store
        if rd.snapshot is not None:
            store.apply_snapshot(rd.snapshot)
        store.append(rd.entries)
        if rd.hard_state is not None:
            store.set_hard_state(rd.hard_state)

    def _on_soft_state(self, leader: int | None, role: Role) -> None:
        if leader != self._leader:
            self._leader = leader
            self._membership.leader_changed()
            self._stats.leader_changes += 1
            if leader == self.id:
                self._stats.elections_won += 1
            self._waiters.leader_changed()
        if leader is not None:
            self._waiters.leader_is(leader)

    def _closed_error(self) -> NodeClosed:
        """A new exception saying why the node stopped (one per raise)."""
        error = self._close_error
        return NodeFailed(error.error) if isinstance(error, NodeFailed) else NodeClosed(str(error))

    def _shutdown(self, reason: str, error: NodeClosed | None = None) -> None:
        """Wake every waiter: nothing more will be applied by this node."""
        if self._closed:
            return
        self._closed = True
        self._close_error = error or NodeClosed(reason)
        for item in self._inbox.close(self._closed_error()):
            waiter = getattr(item, "waiter", None)  # the loop never took it: certainly refused
            if waiter is not None:
                waiter.fail(ProposalDropped(f"{self._close_error}; the request was not taken"))
        self._waiters.fail_all(self._close_error)
        self._status_changed.set()
