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
import time
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from ._applier import Applier
from ._errors import (
    ConfChangeRefused,
    NodeClosed,
    NodeFailed,
    ProposalDropped,
    innermost,
)
from ._gc import GcTuning
from ._inbox import (
    Inbox,
)
from ._installer import SnapshotInstaller
from ._intake import Intake
from ._logstore import RuntimeLogStore
from ._membership import Membership
from ._node_config import NodeConfig, NodeStatistics, NodeStatus
from ._persister import Persister
from ._requests import Requests, leader_ready
from ._snapshotter import Snapshotter
from ._statemachine import StateMachine
from ._status import StatusBoard
from ._waiters import Waiters
from .core import (
    ConfChange,
    ConfChangeType,
    NotLeader,
    ProgressState,
    RawNode,
    Ready,
    Role,
)
from .storage import Storage
from .transport import Transport

__all__ = ["Node"]

log = logging.getLogger("raftkv.node")

# Seconds of Readies one loop iteration handles before it takes its input again (each Ready
# applies at most max_committed_size_per_ready bytes of entries).
READY_BUDGET = 0.005

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
        log_store: RuntimeLogStore,
    ) -> None:
        self.config = config
        self.id = config.id
        self._transport = transport
        self._sm = state_machine
        self._gc = GcTuning(config.gc_tuning)
        self._stats = NodeStatistics(gc=self._gc.stats)
        self._persister = Persister(storage, log_store, self._stats)
        self._membership = Membership(config.id, transport)
        self._installer = SnapshotInstaller(config.id, state_machine, self._stats, self._gc)
        self._snapshotter = Snapshotter(
            config,
            storage=storage,
            log_store=log_store,
            state_machine=state_machine,
            membership=self._membership,
            installer=self._installer,
            gc_tuning=self._gc,
            statistics=self._stats,
        )
        self._installer.spool_from(transport, storage)
        snapshot = log_store.snapshot()
        if not snapshot.is_empty:  # the state machine starts from the newest snapshot
            self._snapshotter.restore(snapshot)
        seed = config.seed if config.seed is not None else random.SystemRandom().randrange(1 << 62)
        raw = self._raw = RawNode(
            config.raft_config(), log_store, random.Random(seed), applied=snapshot.metadata.index
        )
        self._waiters = Waiters(config.id)
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
        self._status_board = StatusBoard(self.status)
        self._requests = Requests(
            self._inbox,
            self._waiters,
            self._status_board,
            check_open=self._check_open,
            takes_conf_changes=leader_ready(lambda: self._ready_at),
        )
        self._close_error: NodeClosed | None = None  # why the node stopped, once it has
        self._tasks: trio.Nursery | None = None
        self._leader: int | None = None
        self._ready_at = 0  # as leader: the index of its term's first entry (the no-op)

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

    @property
    def role(self) -> Role:
        return self._raw.role

    def raft_position(self) -> tuple[int, int]:
        """(applied index, term) right now: what a response from this node reflects."""
        return self._raw.applied, self._raw.term

    def status(self) -> NodeStatus:
        """The node's state right now."""
        s = self._raw.status()
        return NodeStatus.of(s, self._membership.statuses(s), removed=s.removed or self.removed)

    async def wait_status(self, predicate: Callable[[NodeStatus], bool]) -> NodeStatus:
        """Wait until ``predicate(status)`` holds (use with a Trio deadline)."""
        return await self._status_board.wait(predicate)

    async def wait_leader(self) -> int:
        """Wait until this node knows a leader; return its id."""
        status = await self.wait_status(lambda s: s.leader is not None)
        assert status.leader is not None
        return status.leader

    async def propose(self, command: bytes, *, timeout: float | None = None) -> object:
        """Replicate ``command``; return the state machine's result once it is committed and
        applied on this node. While an election is under way it waits for a leader, within
        ``timeout``.

        Raises ``ProposalDropped`` (``NotLeader`` when no leader is known) if it certainly did not
        enter the log, ``OutcomeUnknown`` if we stopped waiting without knowing (a timeout, or the
        node stopping meanwhile), ``NodeClosed`` if the node was stopped before the call.
        """
        return await self._requests.propose(command, self._deadline(timeout))

    async def read_barrier(self, *, timeout: float | None = None) -> int:
        """Wait until this node has applied everything committed when the call began
        (ReadIndex); return the read index. Reads made right after it are linearizable. While
        an election is under way it waits for a leader, within ``timeout``."""
        return await self._requests.read_barrier(self._deadline(timeout))

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
        if self._membership.was_removed(node_id):
            raise ConfChangeRefused(f"node {node_id} was removed: an id is never used again")
        kind = ConfChangeType.ADD_LEARNER if learner else ConfChangeType.ADD_VOTER
        change = ConfChange(kind, node_id, peer_url.encode())
        return await self._requests.conf_change(change, self._deadline(timeout))

    async def promote_member(self, node_id: int, *, timeout: float | None = None) -> dict[int, str]:
        """Make learner ``node_id`` a voter now, rather than waiting for the automatic promotion
        (leader only). Refused unless it is a learner whose log is within ``promote_lag``
        entries of the leader's: a voter that cannot yet vote sensibly weakens the quorum."""
        status = self.status()
        if status.role is not Role.LEADER:
            raise NotLeader(status.leader, "membership")
        member = next((m for m in status.members if m.id == node_id), None)
        if member is None or member.voter:
            what = "not a member" if member is None else "already a voter"
            raise ConfChangeRefused(f"node {node_id} is {what}")
        if (
            member.match is None
            or member.state != ProgressState.REPLICATE.value  # not yet heard from, or lagging
            or member.match + self.config.promote_lag < status.last_index
        ):
            raise ConfChangeRefused(
                f"learner {node_id} has not caught up (matches {member.match or 0} of"
                f" {status.last_index})"
            )
        change = ConfChange(ConfChangeType.ADD_VOTER, node_id, member.peer_url.encode())
        return await self._requests.conf_change(change, self._deadline(timeout))

    async def remove_member(self, node_id: int, *, timeout: float | None = None) -> dict[int, str]:
        """Remove a member (leader only); returns the member table once applied here."""
        change = ConfChange(ConfChangeType.REMOVE_NODE, node_id)
        return await self._requests.conf_change(change, self._deadline(timeout))

    async def transfer_leadership(self, to: int, *, timeout: float | None = None) -> None:
        """Hand leadership to ``to``; returns once this node sees ``to`` as the leader."""
        await self._requests.transfer_leadership(to, self._deadline(timeout))

    def _deadline(self, timeout: float | None) -> float:
        return trio.current_time() + (timeout or self.config.request_timeout)

    def _check_open(self) -> None:
        if self._close_error is not None:
            raise self._closed_error()

    # -- internals: the raft loop ----------------------------------------------------------------

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as tasks:
                self._tasks = tasks
                self._installer.start(tasks, self._inbox.submit)
                tasks.start_soon(self._gc.started)
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
        handle = self._installer.handler(self._intake.handle)
        while not self._removed_event.is_set():
            began = time.perf_counter()
            if not self._inbox.drain(handle) and not self._raw.has_ready():
                await self._inbox.wait(next_tick, handle)
                began = time.perf_counter()  # waiting for input is no stall
                self._inbox.drain(handle)
            now = trio.current_time()
            if now >= next_tick:
                # Under load ticks are late rather than bunched: time only slows down.
                next_tick = max(next_tick + interval, now)
                self._tick()
            self._intake.send_reads()
            while self._raw.has_ready():
                await self._handle_ready(self._raw.ready())
                if time.perf_counter() - began > READY_BUDGET and self._raw.has_ready():
                    break  # more to apply: the rest after the inbox and the other tasks
            await self._after_readies()
            self._stats.loop_iteration(time.perf_counter() - began)
            if self._raw.has_ready():
                await trio.lowlevel.checkpoint()
        self._shutdown("this node was removed from the cluster")

    def _tick(self) -> None:
        self._raw.tick()
        self._ticks += 1
        if self.config.auto_promote:
            self._membership.promote_caught_up_learner(self._raw, self.config.promote_lag)
        config = self.config
        self._membership.maybe_publish(
            self._raw, config.client_url, self._ticks, config.election_ticks
        )

    async def _after_readies(self) -> None:
        raw = self._raw
        if raw.leader is None and raw.conf_state.voters == (self.id,):
            raw.campaign()  # the only voter: no need to wait out an election timeout
        self._installer.settle()
        await self._snapshotter.save_built()
        assert self._tasks is not None
        self._snapshotter.maybe_start(
            self._raw.applied, self._raw.conf_state, self._tasks, self._inbox.submit
        )
        self._status_board.changed()
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
                await self._persister.save(rd)
        else:
            # What promises nothing (a leader's appends) travels while our own disk write is in
            # flight (§10.2.1); votes and acknowledgements wait until it is durable. The core
            # sorted them where it made them.
            if rd.messages:
                self._transport.send(rd.messages)
                # Let the transport put them on the wire before a (blocking) fsync starts.
                await trio.lowlevel.cancel_shielded_checkpoint()
            await self._persister.save(rd)
            if rd.persisted_messages:
                self._transport.send(rd.persisted_messages)
            self._applier.apply_ready(rd)
            self._raw.advance(rd)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.leader, rd.soft_state.role)
        self._waiters.release_reads(self._raw.applied)

    def _on_soft_state(self, leader: int | None, role: Role) -> None:
        term = self._raw.term
        if role is Role.CANDIDATE:
            log.info("node %d started an election at term %d", self.id, term)
        if role is Role.LEADER and leader != self._leader:
            self._ready_at = self._raw.last_index
            log.info("node %d won the election: leader at term %d", self.id, term)
        elif leader != self._leader and leader is not None:
            log.info("node %d follows leader %d at term %d", self.id, leader, term)
        elif leader != self._leader:
            log.info("node %d lost leader %s at term %d", self.id, self._leader, term)
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
        assert error is not None
        return NodeFailed(error.error) if isinstance(error, NodeFailed) else NodeClosed(str(error))

    def _shutdown(self, reason: str, error: NodeClosed | None = None) -> None:
        """Wake every waiter: nothing more will be applied by this node."""
        if self._close_error is not None:
            return
        self._close_error = error or NodeClosed(reason)
        for item in self._inbox.close(self._closed_error()):
            waiter = getattr(item, "waiter", None)  # the loop never took it: certainly refused
            if waiter is not None:
                waiter.fail(ProposalDropped(f"{self._close_error}; the request was not taken"))
        self._waiters.fail_all(self._close_error)
        self._status_board.close(self._closed_error)
