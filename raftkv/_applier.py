"""``Applier``: what a Ready's committed part does to this node, in log order.

A restored snapshot replaces the state machine and the member tables; each committed entry is a
membership change (fed to ``Membership``), a member publishing its client URL, a leader's no-op,
or a command for the state machine, whose result goes to the waiter that proposed it here.
Read states tell waiting reads their index. Every replica applies the same entries alike.
"""

from __future__ import annotations

import logging

import trio

from ._envelope import ATTRIBUTES_SEQ, decode_attributes, decode_proposal
from ._errors import ProposalDropped
from ._membership import Membership
from ._node_config import NodeStatistics
from ._snapshotter import Snapshotter
from ._statemachine import StateMachine
from ._waiters import Waiters
from .core import ConfChange, Entry, EntryType, RawNode, Ready

__all__ = ["Applier"]

log = logging.getLogger("raftkv.node")


class Applier:
    def __init__(
        self,
        node_id: int,
        *,
        raw: RawNode,
        state_machine: StateMachine,
        membership: Membership,
        snapshotter: Snapshotter,
        waiters: Waiters,
        statistics: NodeStatistics,
    ) -> None:
        self.id = node_id
        self._raw = raw
        self._sm = state_machine
        self._membership = membership
        self._snapshotter = snapshotter
        self._waiters = waiters
        self._stats = statistics

    def apply_ready(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            index = rd.snapshot.metadata.index
            self._snapshotter.restore(rd.snapshot)
            self._waiters.snapshot_restored(rd.snapshot.metadata.term)
            self._stats.snapshots_restored += 1
            log.info("node %d restored a snapshot at %d", self.id, index)
        if rd.committed_entries:
            started = trio.current_time()
            self._apply(rd.committed_entries)
            self._stats.apply_latency.observe(trio.current_time() - started)
        for rs in rd.read_states:
            self._waiters.read_index_known(rs.context, rs.index)

    def _apply(self, entries: tuple[Entry, ...]) -> None:
        sm = self._sm
        waiters = self._waiters
        my_id = self.id
        for e in entries:
            waiters.check_replaced(e.index, e.term)
            if e.type is EntryType.CONF_CHANGE:
                self._apply_conf_change(e)
                continue
            decoded = decode_proposal(e.data)
            if decoded is None:
                continue  # a leader's no-op
            origin, seq, command = decoded
            if seq == ATTRIBUTES_SEQ:
                url = decode_attributes(command)
                if url is not None:
                    self._membership.apply_client_url(origin, url)
                continue
            result = sm.apply(e.index, command)
            if origin == my_id:
                waiters.proposal_applied(seq, result)
        waiters.applied_term(entries[-1].term)  # the newest term among them: terms only grow
        self._stats.applied_entries += len(entries)

    def _apply_conf_change(self, e: Entry) -> None:
        waiter = self._waiters.conf_change_applied(e.index)
        try:
            change = ConfChange.decode(e.data)
            self._raw.conf_state.apply(change)  # the core skips what this refuses; so do we
        except ValueError as exc:
            log.warning("node %d: invalid membership change at %d: %s", self.id, e.index, exc)
            if waiter is not None:
                waiter.fail(ProposalDropped(f"invalid membership change: {exc}"))
            return
        self._membership.apply_change(change)
        kind, node = change.type.name, change.node_id
        log.info("node %d applied %s of %d at %d", self.id, kind, node, e.index)
        if waiter is not None:
            waiter.set(self._membership.peer_urls())
