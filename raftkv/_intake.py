"""``Intake``: what reaches the raft loop, turned into inputs of the ``RawNode``.

Local requests (proposals, reads, membership changes, transfers) and the transport's events
(peers' messages, unreachable peers, snapshot outcomes, a peer refusing us as removed) each
become one ``RawNode`` call; a certain refusal fails its waiter at once. Reads that arrive
together share one ReadIndex request (``send_reads``, once per loop iteration).
"""

from __future__ import annotations

import logging

from ._envelope import encode_proposal
from ._errors import ProposalDropped
from ._inbox import (
    ConfChangeRequest,
    InboxItem,
    ProposeRequest,
    ReadRequest,
    SnapshotBuilt,
    TransferRequest,
)
from ._node_config import NodeStatistics
from ._snapshotter import Snapshotter
from ._waiters import Waiters
from .core import ConfChange, RawNode
from .transport import Inbound, Removed, SnapshotStatus, Unreachable

__all__ = ["Intake"]

log = logging.getLogger("raftkv.node")


class Intake:
    def __init__(
        self,
        node_id: int,
        *,
        raw: RawNode,
        waiters: Waiters,
        snapshotter: Snapshotter,
        statistics: NodeStatistics,
    ) -> None:
        self.id = node_id
        self._raw = raw
        self._waiters = waiters
        self._snapshotter = snapshotter
        self._stats = statistics

    def handle(self, item: InboxItem) -> None:
        raw = self._raw
        match item:
            case Inbound(message=message):
                raw.step(message)
            case ProposeRequest():
                self._propose(item)
            case ReadRequest(waiter=waiter):
                self._waiters.read_arrived(waiter)
            case ConfChangeRequest(change=change, waiter=waiter):
                try:
                    entry_id = raw.propose_conf_change(change)
                except ProposalDropped as exc:
                    log.info("node %d refused %s: %s", self.id, _describe(change), exc)
                    waiter.fail(exc)
                    return
                log.info("node %d proposed %s at %d", self.id, _describe(change), entry_id.index)
                self._waiters.appended(entry_id.index, entry_id.term, waiter, conf_change=True)
            case TransferRequest(to=to, waiter=waiter):
                if raw.leader == to:
                    waiter.set(None)
                    return
                try:
                    raw.transfer_leadership(to)
                except ProposalDropped as exc:
                    waiter.fail(exc)
                    return
                self._waiters.transfer_started(to, waiter)
            case Unreachable(peer=peer):
                raw.report_unreachable(peer)
            case SnapshotStatus(peer=peer, ok=ok):
                outcome = "was delivered" if ok else "failed; it will be sent again"
                log.info("node %d: the snapshot sent to %d %s", self.id, peer, outcome)
                raw.report_snapshot(peer, ok)
            case Removed(by=by):
                log.info("node %d: peer %d says this node was removed", self.id, by)
                raw.report_removed(by)
            case SnapshotBuilt():
                self._snapshotter.built(item)

    def _propose(self, item: ProposeRequest) -> None:
        if item.waiter.done:
            return  # the caller gave up before we got to it
        self._stats.proposals += 1
        try:
            entry_id = self._raw.propose(encode_proposal(self.id, item.seq, item.command))
        except ProposalDropped as exc:
            self._stats.proposals_dropped += 1
            item.waiter.fail(exc)
            return
        if entry_id is not None:
            self._waiters.appended(entry_id.index, entry_id.term, item.waiter, conf_change=False)
        # Appended in this term, or buffered to be forwarded in it (a change of term empties
        # the buffer: then it was never sent, and the next term's entries tell so).
        self._waiters.proposal_sent(item.seq, self._raw.term)

    def send_reads(self) -> None:
        """One ReadIndex request for every read that arrived since the last call."""
        taken = self._waiters.take_unsent_reads()
        if taken is None:
            return
        ctx, waiters = taken
        try:
            self._raw.read_index(ctx)
        except ProposalDropped as exc:
            for w in waiters:
                w.fail(exc)
            return
        self._stats.reads += len(waiters)
        self._waiters.reads_sent(ctx, waiters)


def _describe(change: ConfChange) -> str:
    return f"{change.type.name} of {change.node_id}"
