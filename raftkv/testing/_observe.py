"""One-line views of simulated nodes for the transcript: status, progress, durable log, state."""

from __future__ import annotations

from raftkv.core import MemoryLogStore, RawNode, describe

from ._simnode import SimNode

__all__ = ["describe_log", "describe_progress", "kv_line", "snapshot_line", "status_line"]


def status_line(node: SimNode) -> str:
    """Role, term, leader, vote, commit, applied, last index and configuration of a node."""
    raw = node.raw
    if raw is None:
        return f"{node.id}: {'removed' if node.removed else 'down'}"
    lead = raw.leader if raw.leader is not None else "-"
    st = raw.status()
    vote = st.vote if st.vote is not None else "-"
    return (
        f"{node.id}: {raw.role.value} term={raw.term} lead={lead} vote={vote} "
        f"commit={raw.commit} applied={raw.applied} last={raw.last_index} "
        f"{describe(raw.conf_state)}"
    )


def describe_progress(node_id: int, raw: RawNode) -> list[str]:
    """The leader's view of each member's progress."""
    st = raw.status()
    if not st.progress:
        return [f"{node_id}: not the leader"]
    lines = []
    for peer, pr in st.progress.items():
        learner = " learner" if pr.is_learner else ""
        lines.append(f"{peer}: {pr.state.value} match={pr.match} next={pr.next}{learner}")
    return lines


def describe_log(store: MemoryLogStore) -> list[str]:
    """A node's durable log: its snapshot, entries and hard state."""
    lines = []
    snap = store.snapshot()
    if not snap.is_empty:
        lines.append(describe(snap))
    first, last = store.first_index(), store.last_index()
    entries = store.entries(first, last + 1) if last >= first else []
    lines.append("entries [" + ", ".join(describe(e) for e in entries) + "]")
    lines.append("hard-state " + describe(store.hard_state))
    return lines


def snapshot_line(store: MemoryLogStore) -> str:
    """Where a store's snapshot stands and where its log starts."""
    meta = store.snapshot().metadata
    return (
        f"snapshot at {meta.term}/{meta.index} {describe(meta.conf_state)}; "
        f"log starts at {store.first_index()}"
    )


def kv_line(node: SimNode) -> str:
    if node.raw is None:
        return f"{node.id}: {'removed' if node.removed else 'down'}"
    return f"{node.id}: {node.sm.describe()}"
