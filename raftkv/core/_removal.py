"""``Removal``: what a node does once it has applied its own removal from the configuration.

Configuration changes take effect when applied, so a node learns it was removed at the moment
it applies the change, and it may be the only node that knows the change committed. Leaving at
once could strand the others (a two-voter cluster whose other voter never learns the removal
committed cannot elect anyone), so a removed node goes through one of two states first:

* **Retiring** (a leader that applied its own removal, or a lingering node elected by the new
  configuration): it keeps leading the new configuration (thesis §4.2.2: a leader may manage a
  configuration it is not part of), refusing client work and skipping CheckQuorum, and
  heartbeats every voter. A voter whose match covers the removal gets heartbeats with
  ``RETIRE_CONTEXT``; its answer makes it *informed* (its commit index covers the removal).
  Once the informed voters are a quorum of the new configuration, it hands over with
  ``TimeoutNow`` to the most up-to-date informed voter and becomes ``removed``.
* **Lingering** (any other node that applied its removal, or a retiring leader deposed): a
  non-voter that still answers votes and appends, because the remaining voters may need its
  vote or its entries. If no leader emerges it may campaign and lead, only to retire. A peer
  that applied the removal too refuses it (the transport's ``Removed``, ``report_removed``):
  that peer knows the removal committed, so the node becomes ``removed``.

Invariants: ``retiring_at`` is non-zero only while the node leads, and then equals
``removed_at``; a node never retires and lingers at once; ``removed`` excludes both and is
final (the node never campaigns again and the runtime stops it); every informed node is a voter
whose match covers ``retiring_at``. A node in any of these states refuses proposals, reads,
membership changes and leadership transfers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._types import Role

if TYPE_CHECKING:
    from ._raft import Raft

__all__ = ["RETIRE_CONTEXT", "Removal"]

log = logging.getLogger("raftkv.core")

# The context of a retiring leader's heartbeats (never a ReadIndex context: those are the
# runtime's, and a leading zero byte keeps this one apart from any counter it uses).
RETIRE_CONTEXT = b"\x00raftkv:retire"


class Removal:
    """The removal state of one ``Raft``; see the module docstring."""

    __slots__ = ("_raft", "informed", "lingering", "removed", "removed_at", "retiring_at")

    def __init__(self, raft: Raft) -> None:
        self._raft = raft
        # The index at which our own removal was applied (0 while we are a member).
        self.removed_at = 0
        # Retiring: the index of the removal; the voters known to have committed it.
        self.retiring_at = 0
        self.informed: set[int] = set()
        self.lingering = False
        # Final: a quorum of the new configuration knows the removal committed.
        self.removed = False

    @property
    def leaving(self) -> bool:
        """Removed, retiring or lingering: no client work is accepted."""
        return self.removed or bool(self.retiring_at) or self.lingering

    def may_lead_to_retire(self) -> bool:
        """A lingering node may campaign (it is no voter) while the configuration has voters."""
        return self.lingering and bool(self._raft.tracker.voters)

    # -- transitions -------------------------------------------------------------------------------

    def on_applied(self, index: int) -> None:
        """We applied our own removal at ``index``."""
        r = self._raft
        log.info("%d was removed from the configuration", r.id)
        self.removed_at = index
        if r.role is Role.LEADER and r.tracker.voters:
            self._start_retiring()
            r.lead_transferee = None
            self.heartbeat()
            return
        # Not the leader: we may be the only node that knows the removal committed (a retiring
        # leader that crashed and restarted, say), or hold entries the remaining voters lack,
        # so that none of them can win our vote.
        if r.role is not Role.FOLLOWER:
            r.become_follower(r.term, None)
        self.lingering = True

    def on_reset(self) -> None:
        """Our role or term changes. Deposed while retiring: the others may still need our vote
        and our acks (they may not know the removal committed), so linger."""
        if self.retiring_at:
            self.retiring_at = 0
            self.informed = set()
            self.lingering = True

    def on_elected(self) -> None:
        """We became leader. Elected while lingering, by the configuration that removed us: only
        to bring its voters up to date (our log may hold what they miss) and retire."""
        if self.lingering:
            self.lingering = False
            self._start_retiring()

    def _start_retiring(self) -> None:
        self.retiring_at = self.removed_at
        self.informed = set()

    def heartbeat(self) -> None:
        """A retiring leader's heartbeat round, to every voter of the new configuration."""
        r = self._raft
        for node in sorted(r.tracker.progress):
            if node == r.id or not r.tracker.is_voter(node):
                continue
            # Every voter hears from us, so a lagging one's answer resumes its probe; only an
            # answer to a heartbeat whose commit covers the removal counts as informed.
            pr = r.tracker.progress[node]
            ctx = RETIRE_CONTEXT if pr.match >= self.retiring_at else b""
            r.send_heartbeat(node, ctx)

    def on_ack(self, node: int) -> None:
        """``node`` answered a heartbeat with ``RETIRE_CONTEXT``."""
        r = self._raft
        if not self.retiring_at or r.tracker.progress[node].match < self.retiring_at:
            return
        self.informed.add(node)
        if not r.tracker.has_quorum(self.informed):
            return
        # Hand over to the most up-to-date informed voter; it campaigns at once.
        _, best = max((r.tracker.progress[n].match, n) for n in self.informed)
        r.send_timeout_now(best)
        r.become_follower(r.term, None)
        self._finish()

    def confirmed(self, by: int) -> None:
        """Peer ``by`` refused us as a removed member: it applied our removal, so the removal
        committed and the remaining members can go on without us."""
        r = self._raft
        log.info("%d: peer %d confirms our removal", r.id, by)
        if r.role is not Role.FOLLOWER:
            self.retiring_at = 0  # stepping down must not start lingering again
            r.become_follower(r.term, None)
        self._finish()

    def _finish(self) -> None:
        self.retiring_at = 0
        self.informed = set()
        self.lingering = False
        self.removed = True
