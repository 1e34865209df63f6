"""raftkv.core: a pure, deterministic Raft state machine (sans-I/O).

Standard library only; no clocks, no sockets, no threads. Time is ``RawNode.tick()``, randomness
an injected ``random.Random``. Output is one ``Ready`` at a time (see ``_rawnode``): persist its
snapshot, entries and hard state, then send ``persisted_messages``, apply, ``advance``;
``messages`` promise nothing and may be sent before persisting.
"""

from ._config import Config, ReadOnlyOption
from ._describe import describe
from ._errors import (
    ConfChangeRefused,
    InvalidConfig,
    NotLeader,
    ProposalDropped,
    RaftError,
    ReadyContractError,
)
from ._logstore import Compacted, LogStore, MemoryLogStore, Unavailable
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
from ._progress import ProgressState, ProgressView
from ._rawnode import RawNode, Ready, Status, bootstrap
from ._types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryId,
    EntryType,
    HardState,
    ReadState,
    Role,
    Snapshot,
    SnapshotMetadata,
    SoftState,
)

__all__ = [
    "AppendEntries",
    "AppendEntriesResponse",
    "Compacted",
    "ConfChange",
    "ConfChangeRefused",
    "ConfChangeType",
    "ConfState",
    "Config",
    "Entry",
    "EntryId",
    "EntryType",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "InvalidConfig",
    "LogStore",
    "MemoryLogStore",
    "Message",
    "NotLeader",
    "ProgressState",
    "ProgressView",
    "ProposalDropped",
    "Propose",
    "RaftError",
    "RawNode",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "ReadOnlyOption",
    "ReadState",
    "Ready",
    "ReadyContractError",
    "RequestVote",
    "RequestVoteResponse",
    "Role",
    "Snapshot",
    "SnapshotMetadata",
    "SoftState",
    "Status",
    "TimeoutNow",
    "Unavailable",
    "bootstrap",
    "describe",
]
