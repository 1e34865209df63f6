"""The wire messages of the Raft core: one frozen, slotted dataclass each.

Every message carries ``term`` (the sender's term, Raft §5.1), ``src`` and ``dst``. Local inputs
(tick, propose, campaign, read_index, ...) are ``RawNode`` methods, never messages; the only
exception is ``Propose``, a proposal forwarded by a follower to its leader over the wire.

A receiving core treats every message as untrusted remote input: a stale, duplicate, unknown-sender
or nonsensical message is dropped (logged at DEBUG), never raised.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._types import Entry, Snapshot

__all__ = [
    "AppendEntries",
    "AppendEntriesResponse",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "Message",
    "Propose",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "RequestVote",
    "RequestVoteResponse",
    "TimeoutNow",
]


@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Leader -> follower: entries after (prev_index, prev_term), and the leader's commit (§5.3)."""

    term: int
    src: int
    dst: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit: int


@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    """Follower -> leader. On success ``index`` is the last index now known to match.

    On rejection ``index`` echoes the rejected ``prev_index`` and (``hint_index``, ``hint_term``)
    is the follower's best guess of where the logs may match: the largest index <= the probe
    whose term is <= the probe's term (fast backtracking, thesis §5.3).
    Also answers ``InstallSnapshot`` (success, ``index`` = the snapshot's index).
    """

    term: int
    src: int
    dst: int
    index: int
    reject: bool = False
    hint_index: int = 0
    hint_term: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Leader -> follower: leadership and commit. ``commit`` is capped at what the follower matches.

    ``context`` is non-empty when the heartbeat confirms leadership for ReadIndex (§6.4).
    """

    term: int
    src: int
    dst: int
    commit: int
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    term: int
    src: int
    dst: int
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class RequestVote:
    """Candidate -> voter (§5.2), or a pre-candidate's poll when ``pre_vote`` (thesis §9.6).

    A pre-vote carries the term the sender *would* campaign in; it changes no one's state.
    ``transfer`` marks a campaign started by TimeoutNow, which may override a follower's lease.
    """

    term: int
    src: int
    dst: int
    last_index: int
    last_term: int
    pre_vote: bool = False
    transfer: bool = False


@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    term: int
    src: int
    dst: int
    reject: bool
    pre_vote: bool = False


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """Leader -> follower whose next entries were compacted away (§7); transports may chunk it."""

    term: int
    src: int
    dst: int
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leader -> transfer target: campaign at once, ignoring the election timer (thesis §3.10).

    ``commit`` is the leader's commit index (capped at the target's match), so a target handed
    leadership by a leader that just removed itself learns that the removal committed.
    """

    term: int
    src: int
    dst: int
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """Follower -> leader: ask for a read index for ``context`` (thesis §6.4)."""

    term: int
    src: int
    dst: int
    context: bytes


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    """Leader -> follower: reading is safe once ``index`` is applied (unless ``reject``)."""

    term: int
    src: int
    dst: int
    index: int
    context: bytes
    reject: bool = False


@dataclass(frozen=True, slots=True)
class Propose:
    """Follower -> leader: proposals forwarded so that clients can write to any member.

    ``term`` is 0: a forwarded proposal claims no term, so it passes no term check and moves
    nobody's term. ``sent_term`` is the term the follower buffered and sent the entries in (the
    term of the leader it addressed); that leader appends them only while it still leads that
    very term. So once the sender has applied an entry of a later term without having applied a
    proposal, the proposal can never commit: every later leader's log holds that later entry,
    and terms never decrease along a log. A delayed copy that reaches the same node after it is
    elected again is refused. ``sent_term`` 0 comes from a node of the previous version, which
    promised its callers nothing of the kind: such entries are appended unchecked.
    Entries have term and index 0; the leader assigns both.
    """

    term: int
    src: int
    dst: int
    entries: tuple[Entry, ...]
    sent_term: int


Message = (
    AppendEntries
    | AppendEntriesResponse
    | Heartbeat
    | HeartbeatResponse
    | RequestVote
    | RequestVoteResponse
    | InstallSnapshot
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
    | Propose
)
