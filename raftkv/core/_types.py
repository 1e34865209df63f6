"""Plain data of the Raft core: entries, hard state, configurations, snapshots.

Everything here is an immutable value (frozen, slotted dataclasses and enums) so that a batch
handed to the runtime in a ``Ready`` can never be changed behind the core's back.

Node ids are ints >= 1; "no node" (no leader, no vote) is ``None``. Log indexes start at 1;
index 0 with term 0 is the empty log's sentinel.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

__all__ = [
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "EntryId",
    "EntryType",
    "HardState",
    "ReadState",
    "Role",
    "Snapshot",
    "SnapshotMetadata",
    "SoftState",
]


class Role(enum.Enum):
    """What a node currently is in its term."""

    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True, order=True)
class EntryId:
    """An entry's identity: two entries with the same id are the same entry (Log Matching)."""

    term: int
    index: int


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    @property
    def id(self) -> EntryId:
        return EntryId(self.term, self.index)

    def size(self) -> int:
        """The payload size counted against message and uncommitted-size limits."""
        return len(self.data)


@dataclass(frozen=True, slots=True)
class HardState:
    """What a node must have on disk before it says anything that depends on it (Raft §5.1, Fig. 2).

    Invariant: ``term`` and ``commit`` never decrease; ``vote`` changes only with ``term``.
    """

    term: int = 0
    vote: int | None = None
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the runtime may want to observe; reported in ``Ready`` when it changes."""

    leader: int | None
    role: Role


@dataclass(frozen=True, slots=True)
class ConfState:
    """A cluster configuration: voters and learners, each sorted, disjoint."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if tuple(sorted(set(self.voters))) != self.voters:
            raise ValueError(f"voters must be sorted and unique: {self.voters}")
        if tuple(sorted(set(self.learners))) != self.learners:
            raise ValueError(f"learners must be sorted and unique: {self.learners}")
        if set(self.voters) & set(self.learners):
            raise ValueError("a node cannot be both voter and learner")
        if any(i < 1 for i in self.voters + self.learners):
            raise ValueError("node ids are >= 1")

    @classmethod
    def of(cls, voters: object = (), learners: object = ()) -> ConfState:
        """Build from any iterables of ids, sorting them."""
        return cls(tuple(sorted(set(voters))), tuple(sorted(set(learners))))  # type: ignore[call-overload]

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(sorted(self.voters + self.learners))

    def contains(self, node_id: int) -> bool:
        return node_id in self.voters or node_id in self.learners

    def apply(self, change: ConfChange) -> ConfState:
        """The configuration after one single-server change."""
        voters, learners = set(self.voters), set(self.learners)
        node = change.node_id
        if change.type is ConfChangeType.ADD_VOTER:
            learners.discard(node)
            voters.add(node)
        elif change.type is ConfChangeType.ADD_LEARNER:
            if node in voters:
                raise ValueError(f"node {node} is a voter; demotion is not supported")
            learners.add(node)
        else:
            voters.discard(node)
            learners.discard(node)
        return ConfState.of(voters, learners)


class ConfChangeType(enum.IntEnum):
    ADD_VOTER = 0  # also promotes a learner
    ADD_LEARNER = 1
    REMOVE_NODE = 2


_CONF_CHANGE_HEADER = struct.Struct(">BBQ")  # version, type, node id
_CONF_CHANGE_VERSION = 1


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single-server membership change; ``context`` is opaque (the runtime puts the peer URL)."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        head = _CONF_CHANGE_HEADER.pack(_CONF_CHANGE_VERSION, int(self.type), self.node_id)
        return head + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        if len(data) < _CONF_CHANGE_HEADER.size:
            raise ValueError("conf change entry too short")
        version, kind, node = _CONF_CHANGE_HEADER.unpack_from(data)
        if version != _CONF_CHANGE_VERSION:
            raise ValueError(f"unknown conf change version {version}")
        return cls(ConfChangeType(kind), node, bytes(data[_CONF_CHANGE_HEADER.size :]))


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    """Where a snapshot sits in the log and the configuration in force at that index."""

    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State-machine bytes (opaque to the core) covering the log up to ``metadata.index``."""

    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    @property
    def is_empty(self) -> bool:
        return self.metadata.index == 0


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read is safe once this node has applied up to ``index`` (ReadIndex)."""

    index: int
    context: bytes
