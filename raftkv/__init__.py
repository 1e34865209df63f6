"""raftkv: a strongly consistent key-value store and Raft library for Trio.

    async with raftkv.open_node(config, storage=..., transport=..., state_machine=...) as node:
        result = await node.propose(command)     # returns once committed and applied here
        value = await node.read(query)           # linearizable

See README.md and docs/ for the daemon, the HTTP API and the simulation test bed.
"""

from typing import TYPE_CHECKING

from ._errors import (
    AuthError,
    AuthRefused,
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
    PermissionDenied,
    ProposalDropped,
    RaftError,
    ReadyContractError,
    StorageError,
    StorageFailed,
    StorageMismatch,
    TransportError,
    Unauthenticated,
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

if TYPE_CHECKING:
    from .client import AsyncClient, Client

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CLUSTER_ID",
    "AsyncClient",
    "AuthError",
    "AuthRefused",
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
    "PermissionDenied",
    "ProposalDropped",
    "RaftError",
    "ReadyContractError",
    "StateMachine",
    "StorageError",
    "StorageFailed",
    "StorageMismatch",
    "TransportError",
    "Unauthenticated",
    "UnknownLease",
    "ValueTooLarge",
    "WatchLost",
    "innermost",
    "open_node",
    "seed_storage",
]


def __getattr__(name: str) -> object:
    # The clients are imported on first use: a node (the daemon) never needs them, and they
    # are about 40 ms of every start.
    if name in ("AsyncClient", "Client"):
        from . import client  # noqa: PLC0415

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
