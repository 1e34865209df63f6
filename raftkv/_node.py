"""The Trio runtime: ``open_node`` puts a ``RawNode`` to work with a storage, a transport and a
state machine.

One task, the raft loop, owns the ``RawNode``, the state machine and the log store; everything
else talks to it through one bounded memory channel (the inbox), and peers' messages come
straight from the transport's events channel. Each loop iteration takes everything waiting in
both (so many proposals and reads share one batch), ticks when the tick is due, and then handles
every ``Ready`` in the contract's order::

    await storage.save(...)      # durable first: one fsync for the whole batch
    transport.send(messages)     # only then promise anything to peers
    apply committed entries      # wake the proposers waiting on this node
    raw.advance(ready)

The loop lives in the node's nursery; an error in it (a failed fsync, a broken state machine)
surfaces from ``open_node``, and every waiter is woken (``NodeClosed``, or ``OutcomeUnknown``
for a write that was already handed to Raft).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from ._envelope import (
    ATTRIBUTES_SEQ,
    decode_attributes,
    decode_proposal,
    decode_snapshot,
    encode_attributes,
    encode_proposal,
    encode_snapshot,
)
from ._errors import NodeClosed, OutcomeUnknown, ProposalDropped
from ._node_config import MemberStatus, NodeConfig, NodeStatistics, NodeStatus
from ._statemachine import StateMachine
from ._waiters import (
    ConfChangeRequest,
    InboxItem,
    ProposeRequest,
    ReadBatch,
    ReadRequest,
    SnapshotBuilt,
    TransferRequest,
    Waiter,
)
from .core import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    MemoryLogStore,
    ProgressState,
    RawNode,
    Ready,
    Role,
    bootstrap,
)
from .storage import Storage
from .transport import Inbound, Removed, SnapshotStatus, Transport, Unreachable

__all__ = ["MemberStatus", "Node", "NodeConfig", "NodeStatistics", "NodeStatus", "open_node"]

log = logging.getLogger("raftkv.node")

T = TypeVar("T")

# How many inbox items one loop iteration takes before it handles a Ready.
_MAX_BATCH = 4096


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
        raw: RawNode,
        log_store: MemoryLogStore,
        members: dict[int, str],
        client_urls: dict[int, str],
    ) -> None:
        self.config = config
        self.id = config.id
        self._storage = storage
        self._transport = transport
        self._sm = state_machine
        self._raw = raw
        self._log_store = log_store
        self._members = members
        self._client_urls = client_urls
        self._publish_due = 0  # tick count at which to (re)publish our client URL
        self._ticks = 0
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[InboxItem](config.inbox_size)
        # The raft loop reads peers' messages straight from the transport, and local requests
        # from the inbox; a local request wakes the loop by cancelling its wait (_submit).
        self._events = transport.events
        self._events_open = True
        self._waiting: trio.CancelScope | None = None
        self._seq = itertools.count(1)
        self._read_ctx = itertools.count(1)
        # Waiters, owned by the raft loop (Trio is single-threaded: callers may pop their own).
        self._proposals: dict[int, Waiter] = {}  # by sequence number, for entries of ours
        self._by_index: dict[int, tuple[int, Waiter]] = {}  # index -> (term, waiter)
        self._conf_waiters: dict[int, Waiter] = {}  # index of a conf change -> waiter
        self._transfer_waiters: list[tuple[int, Waiter]] = []
        self._reads_unsent: list[Waiter] = []
        self._reads_by_ctx: dict[bytes, ReadBatch] = {}
        self._reads_ready: list[ReadBatch] = []
        self._removed_event = trio.Event()
        # Woken after every loop iteration while someone waits in wait_status().
        self._status_changed = trio.Event()
        self._status_waiters = 0
        self._closed = False
        self._close_reason = "the node is shut down"
        self._snapshot_index = log_store.snapshot().metadata.index
        # Snapshots are built by a task of their own (_build_snapshot), one at a time.
        self._snapshot_building = False
        self._snapshot_built: SnapshotBuilt | None = None
        self._tasks: trio.Nursery | None = None
        self._leader: int | None = None
        self.statistics = NodeStatistics()

    # -- public API ------------------------------------------------------------------------------

    @property
    def state_machine(self) -> StateMachine:
        return self._sm

    @property
    def removed(self) -> bool:
        return self._removed_event.is_set()

    async def wait_removed(self) -> None:
        """Return once this node learned that it was removed from the cluster."""
        await self._removed_event.wait()

    def raft_position(self) -> tuple[int, int]:
        """(applied index, term) right now: what a response from this node reflects."""
        return self._raw.applied, self._raw.term

    def status(self) -> NodeStatus:
        """The node's state right now."""
        return self._make_status()

    async def wait_status(self, predicate: Callable[[NodeStatus], bool]) -> NodeStatus:
        """Wait until ``predicate(status)`` holds (use with a Trio deadline)."""
        self._status_waiters += 1
        try:
            while not predicate(status := self._make_status()):
                if self._closed:
                    raise NodeClosed(self._close_reason)
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
        seq = next(self._seq)
        waiter = Waiter()
        self._proposals[seq] = waiter
        deadline = trio.current_time() + (timeout or self.config.request_timeout)
        try:
            await self._enqueue(ProposeRequest(seq, command, waiter), deadline)
            with trio.move_on_at(deadline):
                return await _unknown_if_closed(waiter)
            raise OutcomeUnknown(
                "the write was proposed but not applied in time; it may still apply"
            )
        finally:
            self._proposals.pop(seq, None)

    async def read_barrier(self, *, timeout: float | None = None) -> int:
        """Wait until this node has applied everything committed when the call began
        (ReadIndex); return the read index. Reads made right after it are linearizable."""
        self._check_open()
        waiter = Waiter()
        try:
            with trio.fail_after(timeout or self.config.request_timeout):
                await self._submit(ReadRequest(waiter))
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
                await self._submit(TransferRequest(to, waiter))
                await waiter.wait()
        except trio.TooSlowError:
            raise ProposalDropped(f"leadership did not move to {to} in time") from None

    # -- internals: requests ---------------------------------------------------------------------

    async def _enqueue(self, item: InboxItem, deadline: float) -> None:
        """Hand a request to the raft loop; a full inbox past the deadline is a certain refusal."""
        if self._offer(item):
            return  # it had room: no deadline to arm
        with trio.move_on_at(deadline):
            await self._submit(item)
            return
        raise ProposalDropped("the node is overloaded: its request queue is full")

    def _check_open(self) -> None:
        if self._closed:
            raise NodeClosed(self._close_reason)

    async def _conf_change(self, change: ConfChange, *, timeout: float | None) -> dict[int, str]:
        self._check_open()
        waiter = Waiter()
        try:
            with trio.fail_after(timeout or self.config.request_timeout):
                await self._submit(ConfChangeRequest(change, waiter))
                members: dict[int, str] = await _unknown_if_closed(waiter)
                return members
        except trio.TooSlowError:
            raise OutcomeUnknown(
                "the membership change was proposed but not applied in time"
            ) from None

    def _handle(self, item: InboxItem) -> None:
        raw = self._raw
        if isinstance(item, Inbound):
            raw.step(item.message)
        elif isinstance(item, ProposeRequest):
            if item.waiter.done:
                return  # the caller gave up before we got to it
            self.statistics.proposals += 1
            try:
                entry_id = raw.propose(encode_proposal(self.id, item.seq, item.command))
            except ProposalDropped as exc:
                self.statistics.proposals_dropped += 1
                item.waiter.fail(exc)
                return
            if entry_id is not None:
                self._by_index[entry_id.index] = (entry_id.term, item.waiter)
        elif isinstance(item, ReadRequest):
            self._reads_unsent.append(item.waiter)
        elif isinstance(item, ConfChangeRequest):
            try:
                entry_id = raw.propose_conf_change(item.change)
            except ProposalDropped as exc:
                item.waiter.fail(exc)
                return
            self._by_index[entry_id.index] = (entry_id.term, item.waiter)
            self._conf_waiters[entry_id.index] = item.waiter
        elif isinstance(item, TransferRequest):
            if raw.leader == item.to:
                item.waiter.set(None)
                return
            try:
                raw.transfer_leadership(item.to)
            except ProposalDropped as exc:
                item.waiter.fail(exc)
                return
            self._transfer_waiters.append((item.to, item.waiter))
        elif isinstance(item, Unreachable):
            raw.report_unreachable(item.peer)
        elif isinstance(item, SnapshotStatus):
            raw.report_snapshot(item.peer, item.ok)
        elif isinstance(item, Removed):
            log.info("node %d: peer %d says this node was removed", self.id, item.by)
            raw.report_removed(item.by)
        elif isinstance(item, SnapshotBuilt):
            self._snapshot_built = item

    def _send_reads(self) -> None:
        """One ReadIndex request for every read that arrived in this iteration."""
        if not self._reads_unsent:
            return
        waiters, self._reads_unsent = self._reads_unsent, []
        waiters = [w for w in waiters if not w.done]
        if not waiters:
            return
        ctx = next(self._read_ctx).to_bytes(8, "big")
        try:
            self._raw.read_index(ctx)
        except ProposalDropped as exc:
            for w in waiters:
                w.fail(exc)
            return
        self.statistics.reads += len(waiters)
        self._reads_by_ctx[ctx] = ReadBatch(waiters)

    # -- internals: the Ready loop ---------------------------------------------------------------

    def _offer(self, item: InboxItem) -> bool:
        """Queue a local request if the inbox has room, and wake the raft loop; else False.

        No checkpoint: the caller's next step is to wait for the answer, and one scheduling
        pass fewer is a measurable part of a lone write."""
        try:
            self._inbox_send.send_nowait(item)
        except trio.WouldBlock:
            return False
        self._wake_loop()
        return True

    async def _submit(self, item: InboxItem) -> None:
        """Queue a local request for the raft loop, waiting while the inbox is full."""
        if not self._offer(item):
            await self._inbox_send.send(item)
            self._wake_loop()

    def _wake_loop(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()

    def _drain(self) -> bool:
        """Handle everything already waiting (local requests, then peers' messages)."""
        handled = False
        for _ in range(_MAX_BATCH):
            try:
                item = self._inbox_recv.receive_nowait()
            except trio.WouldBlock:
                break
            self._handle(item)
            handled = True
        for _ in range(_MAX_BATCH if self._events_open else 0):
            try:
                event = self._events.receive_nowait()
            except trio.WouldBlock:
                break
            except trio.EndOfChannel:
                self._events_open = False
                break
            self._handle(event)
            handled = True
        return handled

    async def _wait_for_work(self, deadline: float) -> None:
        """Wait until a peer's message or a local request arrives, or the deadline passes."""
        with trio.CancelScope(deadline=deadline) as scope:
            self._waiting = scope
            try:
                if self._events_open:
                    try:
                        self._handle(await self._events.receive())
                    except trio.EndOfChannel:
                        self._events_open = False
                else:
                    self._handle(await self._inbox_recv.receive())
            finally:
                self._waiting = None

    async def _run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as tasks:
            self._tasks = tasks
            await self._loop(task_status)
            tasks.cancel_scope.cancel()  # a snapshot still being built is of no use now

    async def _loop(self, task_status: trio.TaskStatus[None]) -> None:
        interval = self.config.tick_interval
        next_tick = trio.current_time() + interval
        task_status.started()
        while not self._removed_event.is_set():
            if not self._drain():
                await self._wait_for_work(next_tick)
                self._drain()
            now = trio.current_time()
            if now >= next_tick:
                self._raw.tick()
                # Under load ticks are late rather than bunched: time only slows down.
                next_tick = max(next_tick + interval, now)
                self._ticks += 1
                self._maybe_promote_learners()
                self._maybe_publish()
            self._send_reads()
            while self._raw.has_ready():
                await self._handle_ready(self._raw.ready())
            if self._snapshot_built is not None:
                await self._save_snapshot(self._snapshot_built)
            self._maybe_start_snapshot()
            self._after_iteration()
            if self._raw.removed:
                log.info("node %d applied its own removal; stopping", self.id)
                self._removed_event.set()
        self._shutdown("this node was removed from the cluster")

    async def _handle_ready(self, rd: Ready) -> None:
        stats = self.statistics
        stats.ready_batches += 1
        if not rd.must_sync and rd.snapshot is None and not rd.entries:
            # Only the commit index moved: nothing said or applied now depends on a new
            # durable write, so answer the waiting clients first and record the commit after
            # (a lost commit index is relearned from the leader).
            if rd.messages:
                self._transport.send(rd.messages)
            self._apply_ready(rd)
            self._raw.advance(rd)
            if rd.hard_state is not None:
                await self._persist(rd)
        else:
            # A leader's appends may travel while its own disk write is in flight (§10.2.1);
            # votes and acknowledgements wait until what they promise is durable.
            early, late = rd.messages, rd.persisted_messages
            if early:
                self._transport.send(early)
                # Let the transport put them on the wire before a (blocking) fsync starts.
                await trio.lowlevel.cancel_shielded_checkpoint()
            await self._persist(rd)
            if late:
                self._transport.send(late)
            self._apply_ready(rd)
            self._raw.advance(rd)
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state.leader, rd.soft_state.role)
        self._release_reads()

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
        self.statistics.persist_latency.observe(trio.current_time() - started)
        store = self._log_store
        if rd.snapshot is not None:
            store.apply_snapshot(rd.snapshot)
        store.append(rd.entries)
        if rd.hard_state is not None:
            store.set_hard_state(rd.hard_state)

    def _apply_ready(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self._restore_snapshot(rd.snapshot.data, rd.snapshot.metadata.index)
        if rd.committed_entries:
            started = trio.current_time()
            self._apply(rd.committed_entries)
            self.statistics.apply_latency.observe(trio.current_time() - started)
        for rs in rd.read_states:
            batch = self._reads_by_ctx.pop(rs.context, None)
            if batch is not None:
                batch.index = rs.index
                self._reads_ready.append(batch)

    def _apply(self, entries: tuple[Entry, ...]) -> None:
        sm = self._sm
        by_index = self._by_index
        proposals = self._proposals
        my_id = self.id
        for e in entries:
            pending = by_index.pop(e.index, None) if by_index else None
            if pending is not None and pending[0] != e.term:
                # Another leader's entry replaced ours at this index: ours will never apply.
                pending[1].fail(ProposalDropped("the entry was replaced after a leader change"))
                self._conf_waiters.pop(e.index, None)
            if e.type is EntryType.CONF_CHANGE:
                self._apply_conf_change(e)
                continue
            decoded = decode_proposal(e.data)
            if decoded is None:
                continue  # a leader's no-op
            origin, seq, command = decoded
            if seq == ATTRIBUTES_SEQ:
                url = decode_attributes(command)
                if url is not None and origin in self._members:
                    self._client_urls[origin] = url
                continue
            result = sm.apply(e.index, command)
            if origin == my_id:
                waiter = proposals.pop(seq, None)
                if waiter is not None:
                    waiter.set(result)
        self.statistics.applied_entries += len(entries)

    def _apply_conf_change(self, e: Entry) -> None:
        waiter = self._conf_waiters.pop(e.index, None)
        try:
            change = ConfChange.decode(e.data)
            self._raw.conf_state.apply(change)  # the core skips what this refuses; so do we
        except ValueError as exc:
            log.warning("node %d: invalid membership change at %d: %s", self.id, e.index, exc)
            if waiter is not None:
                waiter.fail(ProposalDropped(f"invalid membership change: {exc}"))
            return
        node = change.node_id
        if change.type is ConfChangeType.REMOVE_NODE:
            self._members.pop(node, None)
            self._client_urls.pop(node, None)
            if node != self.id:
                self._transport.remove_peer(node)
        else:
            url = change.context.decode("utf-8", "replace")
            if url:
                self._members[node] = url
                if node != self.id:
                    self._transport.add_peer(node, url)
        log.info("node %d applied %s of %d at %d", self.id, change.type.name, node, e.index)
        if waiter is not None:
            waiter.set(dict(self._members))

    def _restore_snapshot(self, data: bytes, index: int) -> None:
        members, app, client_urls = decode_snapshot(data)
        self._sm.restore(app)
        self._set_members(members)
        self._client_urls = client_urls
        self._snapshot_index = index
        self.statistics.snapshots_restored += 1
        log.info("node %d restored a snapshot at %d", self.id, index)

    def _set_members(self, members: dict[int, str]) -> None:
        for node in set(self._members) - set(members):
            if node != self.id:
                self._transport.remove_peer(node)
        for node, url in members.items():
            if node != self.id:
                self._transport.add_peer(node, url)
        self._members = dict(members)

    def _on_soft_state(self, leader: int | None, role: Role) -> None:
        if leader != self._leader:
            self._leader = leader
            self._publish_due = 0  # tell the (new) leader's log our client URL soon
            self.statistics.leader_changes += 1
            if leader == self.id:
                self.statistics.elections_won += 1
            # Read requests sent to the old leader may never be answered: ask the new one.
            for batch in self._reads_by_ctx.values():
                self._reads_unsent.extend(batch.waiters)
            self._reads_by_ctx.clear()
        if self._transfer_waiters and leader is not None:
            still = []
            for to, waiter in self._transfer_waiters:
                if leader == to:
                    waiter.set(None)
                else:
                    still.append((to, waiter))
            self._transfer_waiters = still

    def _release_reads(self) -> None:
        if not self._reads_ready:
            return
        applied = self._raw.applied
        still = []
        for batch in self._reads_ready:
            if batch.index <= applied:
                for w in batch.waiters:
                    w.set(batch.index)
            else:
                still.append(batch)
        self._reads_ready = still

    def _maybe_start_snapshot(self) -> None:
        """Every ``snapshot_count`` applied entries, start building a snapshot of now.

        Serializing a large state takes long (about 170 ms for 100 000 keys), so only capturing
        it happens here; a task turns it into bytes a chunk at a time, letting the raft loop run
        between chunks, and hands them back (``SnapshotBuilt``) to be saved."""
        applied = self._raw.applied
        if self._snapshot_building or applied - self._snapshot_index < self.config.snapshot_count:
            return
        assert self._tasks is not None
        self._snapshot_building = True
        self._tasks.start_soon(
            self._build_snapshot,
            applied,
            self._raw.conf_state,
            dict(self._members),
            dict(self._client_urls),
            self._state_chunks(),
        )

    def _state_chunks(self) -> Iterator[bytes]:
        """The state machine's state as of now, as chunks to serialize later."""
        chunks: Callable[[], Iterator[bytes]] | None = getattr(self._sm, "snapshot_chunks", None)
        if chunks is None:  # a plain StateMachine: its snapshot() is taken right here
            return iter((self._sm.snapshot(),))
        return chunks()  # a consistent view, serialized as the chunks are consumed

    async def _build_snapshot(
        self,
        index: int,
        conf_state: ConfState,
        members: dict[int, str],
        client_urls: dict[int, str],
        chunks: Iterator[bytes],
    ) -> None:
        parts = []
        for chunk in chunks:
            parts.append(chunk)
            await trio.lowlevel.checkpoint()
        data = encode_snapshot(members, parts, client_urls)
        del parts
        await self._submit(SnapshotBuilt(index, conf_state, data))

    async def _save_snapshot(self, built: SnapshotBuilt) -> None:
        self._snapshot_built = None
        self._snapshot_building = False
        if built.index <= self._log_store.snapshot().metadata.index:
            return  # a newer snapshot (sent by the leader) was restored meanwhile
        snapshot = self._log_store.create_snapshot(built.index, built.conf_state, built.data)
        await self._storage.save_snapshot(snapshot)
        self._snapshot_index = built.index
        self.statistics.snapshots_taken += 1
        keep_from = built.index - self.config.catch_up_entries
        if keep_from > self._log_store.first_index():
            self._log_store.compact(keep_from)
            await self._storage.compact(keep_from)
        log.info("node %d took a snapshot at %d", self.id, built.index)

    def _maybe_promote_learners(self) -> None:
        raw = self._raw
        if raw.role is not Role.LEADER:
            return
        learners = raw.conf_state.learners
        if not learners:
            return
        status = raw.status()
        for node in learners:
            pr = status.progress.get(node)
            if (
                pr is not None
                and pr.state is ProgressState.REPLICATE
                and pr.match + self.config.promote_lag >= status.last_index
            ):
                url = self._members.get(node, "")
                try:
                    raw.propose_conf_change(
                        ConfChange(ConfChangeType.ADD_VOTER, node, url.encode())
                    )
                except ProposalDropped:
                    return  # another change is pending; try again on a later tick
                log.info("node %d promotes learner %d", self.id, node)
                return

    def _maybe_publish(self) -> None:
        """Replicate our client URL until the cluster's table shows it (retried every timeout)."""
        url = self.config.client_url
        raw = self._raw
        if not url or self._client_urls.get(self.id) == url or raw.leader is None:
            return
        if self._ticks < self._publish_due or self.id not in raw.conf_state.members:
            return
        self._publish_due = self._ticks + self.config.election_ticks
        # No leader right now: the next attempt comes after an election timeout.
        with contextlib.suppress(ProposalDropped):
            raw.propose(encode_proposal(self.id, ATTRIBUTES_SEQ, encode_attributes(url)))

    def _after_iteration(self) -> None:
        if self._status_waiters:
            self._status_changed.set()
            self._status_changed = trio.Event()

    def _make_status(self) -> NodeStatus:
        s = self._raw.status()
        conf = s.conf_state
        members = tuple(
            MemberStatus(
                id=node,
                peer_url=self._members.get(node, ""),
                voter=node in conf.voters,
                client_url=self._client_urls.get(node, ""),
                match=s.progress[node].match if node in s.progress else None,
                state=s.progress[node].state.value if node in s.progress else None,
            )
            for node in conf.members
        )
        return NodeStatus(
            id=s.id,
            role=s.role,
            term=s.term,
            leader=s.leader,
            commit=s.commit,
            applied=s.applied,
            last_index=s.last_index,
            members=members,
            removed=s.removed or self.removed,
        )

    def _shutdown(self, reason: str) -> None:
        """Wake every waiter: nothing more will be applied by this node."""
        if self._closed:
            return
        self._closed = True
        self._close_reason = reason
        error = NodeClosed(reason)
        for waiter in self._proposals.values():
            waiter.fail(error)
        for _, waiter in self._by_index.values():
            waiter.fail(error)
        for waiter in self._conf_waiters.values():
            waiter.fail(error)
        for _, waiter in self._transfer_waiters:
            waiter.fail(error)
        for waiter in self._reads_unsent:
            waiter.fail(error)
        for batch in [*self._reads_by_ctx.values(), *self._reads_ready]:
            for waiter in batch.waiters:
                waiter.fail(error)
        self._status_changed.set()


async def _unknown_if_closed(waiter: Waiter) -> Any:
    """A proposal's answer; the node stopping after it was handed over leaves its fate open."""
    try:
        return await waiter.wait()
    except NodeClosed as exc:
        raise OutcomeUnknown(f"{exc} before the outcome was known; it may have applied") from None


def _peer_contexts(peers: Mapping[int, str]) -> dict[int, bytes]:
    return {node: url.encode() for node, url in peers.items()}


@asynccontextmanager
async def open_node(
    config: NodeConfig,
    *,
    storage: Storage,
    transport: Transport,
    state_machine: StateMachine,
    peers: Mapping[int, str] | None = None,
    join: bool = False,
) -> AsyncIterator[Node]:
    """Start a node; stop it when the block exits.

    Existing data in ``storage`` always wins: the node restarts from its newest snapshot and the
    log after it. Otherwise a node either founds the cluster with ``peers`` (id -> peer URL, the
    same on every founding member, including this node) or, with ``join=True``, starts empty and
    waits for the leader that added it to send it the log (or a snapshot).

        async with open_node(NodeConfig(id=1), storage=s, transport=t, state_machine=sm,
                             peers={1: "http://127.0.0.1:12379"}) as node:
            result = await node.propose(b"command")
    """
    state = await storage.load()
    members: dict[int, str] = {}
    client_urls: dict[int, str] = {}
    if not state.is_empty:
        store = MemoryLogStore.restore(state.hard_state, state.snapshot, state.entries)
        applied = 0
        if state.snapshot is not None and not state.snapshot.is_empty:
            members, app, client_urls = decode_snapshot(state.snapshot.data)
            state_machine.restore(app)
            applied = state.snapshot.metadata.index
    elif join:
        store = MemoryLogStore()
        applied = 0
    else:
        if not peers or config.id not in peers:
            raise ValueError(f"node {config.id} must be one of the founding peers")
        store = MemoryLogStore()
        hard_state, entries = bootstrap(store, _peer_contexts(peers))
        await storage.save(hard_state=hard_state, entries=entries, snapshot=None, sync=True)
        applied = 0
    for member, url in members.items():
        if member != config.id:
            transport.add_peer(member, url)
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(1 << 62)
    raw = RawNode(config.raft_config(), store, random.Random(seed), applied=applied)
    node = Node(
        config,
        storage=storage,
        transport=transport,
        state_machine=state_machine,
        raw=raw,
        log_store=store,
        members=members,
        client_urls=client_urls,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node._run)
            try:
                yield node
            finally:
                nursery.cancel_scope.cancel()
    finally:
        node._shutdown("the node is shut down")
