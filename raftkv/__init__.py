"""raftkv: a strongly consistent key-value store and Raft library for Trio.

    async with raftkv.open_node(config, storage=..., transport=..., state_machine=...) as node:
        result = await node.propose(command)     # returns once committed and applied here
        value = await node.read(query)           # linearizable

See README.md and docs/ for the daemon, the HTTP API and the simulation test bed.
"""

from ._errors import (
    Compacted,
    ConfChangeRefused,
    CorruptLog,
    CorruptSnapshot,
    FutureRevision,
    InvalidConfig,
    InvalidKey,
    LeaseIdTaken,
    NodeClosed,
    NodeFailed,
    NotLeader,
    OutcomeUnknown,
    ProposalDropped,
    RaftError,
    ReadyContractError,
    StorageError,
    StorageFailed,
    StorageMismatch,
    TransportError,
    UnknownLease,
    ValueTooLarge,
    WatchLost,
    innermost,
)
from ._node import Node
from ._node_config import MemberStatus, NodeConfig, NodeStatistics, NodeStatus
from ._open import DEFAULT_CLUSTER_ID, open_node
from ._seed import seed_storage
from ._statemachine import StateMachine
from ._stats import LatencyHistogram
from .client import AsyncClient, Client

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CLUSTER_ID",
    "AsyncClient",
    "Client",
    "Compacted",
    "ConfChangeRefused",
    "CorruptLog",
    "CorruptSnapshot",
    "FutureRevision",
    "InvalidConfig",
    "InvalidKey",
    "LatencyHistogram",
    "LeaseIdTaken",
    "MemberStatus",
    "Node",
    "NodeClosed",
    "NodeConfig",
    "NodeFailed",
    "NodeStatistics",
    "NodeStatus",
    "NotLeader",
    "OutcomeUnknown",
    "ProposalDropped",
    "RaftError",
    "ReadyContractError",
    "StateMachine",
    "StorageError",
    "StorageFailed",
    "StorageMismatch",
    "TransportError",
    "UnknownLease",
    "ValueTooLarge",
    "WatchLost",
    "innermost",
    "open_node",
    "seed_storage",
]
