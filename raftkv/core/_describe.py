"""Stable, human-readable text for messages, entries and Ready batches.

Used by logs and by the scenario tests, whose expected output is this text: change it only on
purpose (and rewrite the scenarios).
"""

from __future__ import annotations

from ._messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
)
from ._rawnode import Ready
from ._types import ConfChange, ConfState, Entry, EntryType, HardState, Snapshot

__all__ = ["describe", "describe_entries", "describe_entry", "describe_message"]

_MAX_DATA = 24


def _data(data: bytes) -> str:
    text = repr(data[:_MAX_DATA])
    return text + ("…" if len(data) > _MAX_DATA else "")


def describe_conf_state(cs: ConfState) -> str:
    voters = " ".join(map(str, cs.voters))
    learners = " ".join(map(str, cs.learners))
    return f"voters=({voters})" + (f" learners=({learners})" if learners else "")


def describe_entry(e: Entry) -> str:
    if e.type is EntryType.CONF_CHANGE:
        try:
            cc = ConfChange.decode(e.data)
        except ValueError:
            return f"{e.term}/{e.index} conf:invalid"
        kind = cc.type.name.lower().replace("_", "-")
        return f"{e.term}/{e.index} conf:{kind} {cc.node_id}"
    if not e.data:
        return f"{e.term}/{e.index} empty"
    return f"{e.term}/{e.index} {_data(e.data)}"


def describe_entries(entries: tuple[Entry, ...] | list[Entry]) -> str:
    return "[" + ", ".join(describe_entry(e) for e in entries) + "]"


def describe_snapshot(s: Snapshot) -> str:
    m = s.metadata
    return f"snapshot index={m.index} term={m.term} {describe_conf_state(m.conf_state)}"


def describe_hard_state(hs: HardState) -> str:
    vote = hs.vote if hs.vote is not None else "-"
    return f"term={hs.term} vote={vote} commit={hs.commit}"


def describe_message(m: Message) -> str:
    head = f"{m.src}->{m.dst} {type(m).__name__} term={m.term}"
    if isinstance(m, AppendEntries):
        body = (
            f"prev=({m.prev_index},{m.prev_term}) commit={m.commit}"
            f" entries={describe_entries(m.entries)}"
        )
    elif isinstance(m, AppendEntriesResponse):
        body = f"index={m.index}" + (
            f" reject hint=({m.hint_index},{m.hint_term})" if m.reject else ""
        )
    elif isinstance(m, Heartbeat):
        body = f"commit={m.commit}" + (f" ctx={_data(m.context)}" if m.context else "")
    elif isinstance(m, HeartbeatResponse):
        body = f"ctx={_data(m.context)}" if m.context else ""
    elif isinstance(m, RequestVote):
        body = f"last=({m.last_index},{m.last_term})"
        body += " pre-vote" if m.pre_vote else ""
        body += " transfer" if m.transfer else ""
    elif isinstance(m, RequestVoteResponse):
        body = ("reject" if m.reject else "grant") + (" pre-vote" if m.pre_vote else "")
    elif isinstance(m, InstallSnapshot):
        body = describe_snapshot(m.snapshot)
    elif isinstance(m, TimeoutNow):
        body = f"commit={m.commit}"
    elif isinstance(m, ReadIndexRequest):
        body = f"ctx={_data(m.context)}"
    elif isinstance(m, ReadIndexResponse):
        body = f"index={m.index} ctx={_data(m.context)}" + (" reject" if m.reject else "")
    elif isinstance(m, Propose):
        body = f"entries={describe_entries(m.entries)}"
    else:  # pragma: no cover - exhaustive over Message
        raise TypeError(f"not a message: {m!r}")
    return f"{head} {body}".rstrip()


def describe_ready(rd: Ready) -> str:
    lines = []
    if rd.soft_state is not None:
        leader = rd.soft_state.leader if rd.soft_state.leader is not None else "-"
        lines.append(f"role={rd.soft_state.role.value} leader={leader}")
    if rd.hard_state is not None:
        lines.append("hard-state " + describe_hard_state(rd.hard_state))
    if rd.snapshot is not None:
        lines.append(describe_snapshot(rd.snapshot))
    if rd.entries:
        lines.append("entries " + describe_entries(rd.entries))
    if rd.committed_entries:
        lines.append("committed " + describe_entries(rd.committed_entries))
    for rs in rd.read_states:
        lines.append(f"read-state index={rs.index} ctx={_data(rs.context)}")
    lines.extend(describe_message(m) for m in rd.messages)
    if rd.persisted_messages:
        # What must wait until the lines above are durable (the Ready contract).
        lines.append("after persisting:")
        lines.extend(describe_message(m) for m in rd.persisted_messages)
    if rd.must_sync:
        lines.append("must-sync")
    return "\n".join(lines)


def describe(x: object) -> str:
    """Text for a Message, Entry, Ready, Snapshot, HardState or ConfState."""
    if isinstance(x, Ready):
        return describe_ready(x)
    if isinstance(x, Entry):
        return describe_entry(x)
    if isinstance(x, Snapshot):
        return describe_snapshot(x)
    if isinstance(x, HardState):
        return describe_hard_state(x)
    if isinstance(x, ConfState):
        return describe_conf_state(x)
    return describe_message(x)  # type: ignore[arg-type]
