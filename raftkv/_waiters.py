"""Callers waiting for the raft loop: ``Waiter``, and ``Waiters``, the registry of all of them.

Every request that waits for Raft (a proposal, a read, a membership change, a leadership
transfer) has exactly one ``Waiter`` in exactly one table here, and ``fail_all`` is the one way
to wake them all when the node stops. The raft loop owns the registry; callers only drop their
own proposal when they stop waiting (Trio is single-threaded, so that needs no lock).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import trio

from ._errors import NodeClosed, OutcomeUnknown, ProposalDropped

__all__ = ["ReadBatch", "Waiter", "Waiters"]


class Waiter:
    """One caller waiting for the raft loop. Set at most once; later sets are ignored."""

    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def set(self, value: Any) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        return self._value

    async def outcome(self) -> Any:
        """The answer to a request already handed to Raft: the node stopping meanwhile leaves
        its fate open (``OutcomeUnknown``), it does not refuse it."""
        try:
            return await self.wait()
        except NodeClosed as exc:
            detail = f"{exc} before the outcome was known; it may have applied"
            raise OutcomeUnknown(detail) from exc  # the cause tells why the node stopped


@dataclass(slots=True)
class ReadBatch:
    """Reads that share one ReadIndex request; released once applied reaches ``index``."""

    waiters: list[Waiter]
    index: int = 0


class Waiters:
    def __init__(self, node_id: int) -> None:
        self._seq = itertools.count(1)
        # ReadIndex contexts are unique across the cluster, not just here: the leader keeps the
        # pending reads of every member by context (node id, then a counter).
        self._read_prefix = node_id.to_bytes(8, "big")
        self._read_ctx = itertools.count(1)
        # Proposals of ours, by sequence number: matched when their entry is applied, wherever
        # the leader appended it (a forwarded proposal's index is never known up front).
        self.proposals: dict[int, Waiter] = {}
        # Entries appended here as leader: index -> (term, waiter). Another leader's entry at
        # that index means ours was replaced and will never apply.
        self._by_index: dict[int, tuple[int, Waiter]] = {}
        self._conf_changes: dict[int, Waiter] = {}  # index of a membership change -> waiter
        self._transfers: list[tuple[int, Waiter]] = []  # (target, waiter)
        self._reads_unsent: list[Waiter] = []
        self._reads_by_ctx: dict[bytes, ReadBatch] = {}
        self._reads_ready: list[ReadBatch] = []

    # -- proposals ------------------------------------------------------------------------------

    def new_proposal(self) -> tuple[int, Waiter]:
        seq = next(self._seq)
        waiter = self.proposals[seq] = Waiter()
        return seq, waiter

    def appended(self, index: int, term: int, waiter: Waiter, *, conf_change: bool) -> None:
        """This node, leading, appended the waiter's entry at ``index`` in ``term``."""
        self._by_index[index] = (term, waiter)
        if conf_change:
            self._conf_changes[index] = waiter

    def check_replaced(self, index: int, term: int) -> None:
        """The entry at ``index`` is being applied: fail a waiter whose entry it replaced."""
        pending = self._by_index.pop(index, None) if self._by_index else None
        if pending is not None and pending[0] != term:
            pending[1].fail(ProposalDropped("the entry was replaced after a leader change"))
            self._conf_changes.pop(index, None)

    def proposal_applied(self, seq: int, result: object) -> None:
        waiter = self.proposals.pop(seq, None)
        if waiter is not None:
            waiter.set(result)

    def conf_change_applied(self, index: int) -> Waiter | None:
        return self._conf_changes.pop(index, None)

    # -- leadership transfer --------------------------------------------------------------------

    def transfer_started(self, to: int, waiter: Waiter) -> None:
        self._transfers.append((to, waiter))

    def leader_is(self, leader: int) -> None:
        """Wake the transfers that reached their target."""
        if not self._transfers:
            return
        for to, waiter in self._transfers:
            if to == leader:
                waiter.set(None)
        self._transfers = [(to, w) for to, w in self._transfers if to != leader]

    # -- reads ----------------------------------------------------------------------------------

    def read_arrived(self, waiter: Waiter) -> None:
        self._reads_unsent.append(waiter)

    def take_unsent_reads(self) -> tuple[bytes, list[Waiter]] | None:
        """The reads that arrived since the last call, with a fresh ReadIndex context for them
        (None if there are none still waiting)."""
        waiters = [w for w in self._reads_unsent if not w.done]
        self._reads_unsent = []
        if not waiters:
            return None
        return self._read_prefix + next(self._read_ctx).to_bytes(8, "big"), waiters

    def reads_sent(self, context: bytes, waiters: list[Waiter]) -> None:
        self._reads_by_ctx[context] = ReadBatch(waiters)

    def read_index_known(self, context: bytes, index: int) -> None:
        batch = self._reads_by_ctx.pop(context, None)
        if batch is not None:
            batch.index = index
            self._reads_ready.append(batch)

    def release_reads(self, applied: int) -> None:
        """Answer the reads whose index this node has applied."""
        if not self._reads_ready:
            return
        still = []
        for batch in self._reads_ready:
            if batch.index <= applied:
                for w in batch.waiters:
                    w.set(batch.index)
            else:
                still.append(batch)
        self._reads_ready = still

    def leader_changed(self) -> None:
        """Read requests sent to the old leader may never be answered: ask the new one."""
        for batch in self._reads_by_ctx.values():
            self._reads_unsent.extend(batch.waiters)
        self._reads_by_ctx.clear()

    # -- shutdown -------------------------------------------------------------------------------

    def fail_all(self, error: BaseException) -> None:
        """Wake every waiter with ``error``: nothing more will be applied here."""
        waiters = [
            *self.proposals.values(),
            *(w for _, w in self._by_index.values()),
            *self._conf_changes.values(),
            *(w for _, w in self._transfers),
            *self._reads_unsent,
            *(w for b in [*self._reads_by_ctx.values(), *self._reads_ready] for w in b.waiters),
        ]
        for waiter in waiters:
            waiter.fail(error)
