"""``check_liveness``: after the faults stop, the cluster elects a leader and commits again.

The network heals and every crashed (not removed) node restarts; then a leader must emerge
within a number of election timeouts, with an entry of its own term committed (so that it can
serve writes and reads), and a new proposal must be applied on every member.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raftkv.core import ProposalDropped

from ._invariants import _term_in

if TYPE_CHECKING:
    from ._cluster import Cluster

__all__ = ["LivenessFailure", "check_liveness", "stable_leader"]


class LivenessFailure(AssertionError):
    """After the faults stopped, the cluster did not elect a leader or commit a proposal."""


def check_liveness(c: Cluster, timeouts: int) -> tuple[int, int, bytes]:
    """Heal, restart, and wait; returns (leader, ticks until it emerged, the proposal applied
    everywhere). Raises ``LivenessFailure``."""
    c.network.heal()
    for node in c.nodes.values():
        if node.raw is None and not node.removed:
            c.node_set.restart(node)
    c.settle()
    lead, ticks = _wait_for_leader(c, timeouts)
    lead, done = _commit_everywhere(c, timeouts)
    return lead, ticks, done


def _wait_for_leader(c: Cluster, timeouts: int) -> tuple[int, int]:
    election = c.node_config(1).election_ticks
    for ticks in range(timeouts * election + 1):
        lead = stable_leader(c)
        if lead is not None:
            return lead, ticks
        c.tick_all()
        c.settle()
    raise LivenessFailure(
        f"no leader within {timeouts} election timeouts after healing: {_states(c)}"
    )


def _commit_everywhere(c: Cluster, timeouts: int) -> tuple[int, bytes]:
    # Pending membership changes may still move leadership (a removed leader steps down):
    # re-propose to each new leader.
    election = c.node_config(1).election_ticks
    proposed: dict[int, bytes] = {}
    lead = None
    for _ in range(timeouts * election):
        c.settle()
        lead = stable_leader(c)
        if lead is not None:
            done = next((d for d in proposed.values() if _applied_everywhere(c, lead, d)), None)
            if done is not None:
                return lead, done
            term = c.raw(lead).term
            if term not in proposed:
                proposed[term] = f"liveness=t{term}c{c.clients.clock}".encode()
                try:
                    c.raw(lead).propose(proposed[term])
                except ProposalDropped:
                    del proposed[term]  # e.g. a transfer started meanwhile: retry
                else:
                    continue
        c.tick_all()
    raise LivenessFailure(f"no new proposal reached every member (leader {lead}): {_states(c)}")


def stable_leader(c: Cluster) -> int | None:
    """The leader, if it leads with an entry of its own term committed (it can serve writes
    and reads) and is neither handing over nor a removed leader retiring."""
    lead = c.leader()
    if lead is None:
        return None
    raw = c.raw(lead)
    if raw.status().lead_transferee is not None or lead not in raw.conf_state.voters:
        return None
    return lead if _term_in(c.nodes[lead].store, raw.commit) == raw.term else None


def _applied_everywhere(c: Cluster, lead: int, data: bytes) -> bool:
    for i in c.raw(lead).conf_state.members:
        node = c.nodes.get(i)
        if node is not None and node.raw is not None and data not in node.sm.seen:
            return False
    return True


def _states(c: Cluster) -> str:
    return "; ".join(c.status_line(i) for i in c.ids)
