"""The ``Transport`` protocol: how a node's messages reach its peers and theirs reach it.

A transport never blocks the Ready loop: ``send`` queues and returns; a peer whose queue is full
loses the message and is reported ``Unreachable`` (Raft tolerates loss; the leader re-probes).
Inbound messages and reports arrive on ``events``. A transport checks who is talking before any
message reaches the core: unknown senders, removed members, another cluster or malformed frames are
refused and counted, never delivered.

Promises every implementation keeps (``tests/transport/test_conformance.py`` checks them):

- Messages from one sender to one receiver arrive in the order they were sent, unless some are
  lost in between (a broken connection loses the messages it carried; Raft re-sends).
- An ``InstallSnapshot`` may be overtaken by messages sent after it (it streams in the background
  so heartbeats keep flowing); its sender learns the outcome from one ``SnapshotStatus``.
- A message to a peer that is unknown, down or backlogged is dropped and ``Unreachable(peer)`` is
  reported. Reports are coalesced: identical reports still waiting on ``events`` are sent once.
- After ``remove_peer(x)`` nothing from ``x`` is delivered any more, and ``x`` is told: its own
  transport reports ``Removed(by=<this node>)`` (once per refusing peer).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import trio

from ..core import Message

__all__ = [
    "Inbound",
    "Refusal",
    "Removed",
    "SnapshotStatus",
    "Transport",
    "TransportEvent",
    "TransportStatistics",
    "Unreachable",
]


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message from a peer, for ``RawNode.step``."""

    message: Message


@dataclass(frozen=True, slots=True)
class Unreachable:
    """A message to ``peer`` was lost (overflow, broken connection): ``report_unreachable``."""

    peer: int


@dataclass(frozen=True, slots=True)
class SnapshotStatus:
    """The outcome of sending a snapshot to ``peer``: ``report_snapshot(peer, ok)``.

    ``ok`` means the snapshot was handed over completely (written to the connection), not that
    the peer applied it; the peer's ``AppendEntriesResponse`` says that.
    """

    peer: int
    ok: bool


@dataclass(frozen=True, slots=True)
class Removed:
    """A peer told us that this node is no longer a member of the cluster."""

    by: int


TransportEvent = Inbound | Unreachable | SnapshotStatus | Removed


class Refusal(enum.StrEnum):
    """Why a transport refused a peer's connection or message. The values go on the wire."""

    WRONG_CLUSTER = "wrong-cluster"
    UNKNOWN_SENDER = "unknown-sender"
    WRONG_RECEIVER = "wrong-receiver"
    REMOVED = "removed"
    INCOMPATIBLE = "incompatible-version"
    BAD_HANDSHAKE = "bad-handshake"
    HANDSHAKE_TIMEOUT = "handshake-timeout"
    TLS = "tls-failed"
    OVERSIZED_FRAME = "oversized-frame"
    BAD_FRAME = "bad-frame"
    FORGED = "forged-message"


@dataclass(frozen=True, slots=True)
class TransportStatistics:
    """Counters since the transport opened (a snapshot; later traffic does not change it)."""

    messages_sent: int = 0  # handed to the network / written to a connection
    messages_received: int = 0  # accepted from peers for ``events``
    messages_dropped: int = 0  # lost before leaving: overflow, peer unknown or down, too large
    writes: int = 0  # socket writes; several messages share one (0 without sockets)
    snapshots_sent: int = 0
    snapshots_failed: int = 0
    snapshots_received: int = 0
    # Connections (TCP) or messages (memory network) refused, by reason.
    refused: Mapping[Refusal, int] = field(default_factory=dict)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


@runtime_checkable
class Transport(Protocol):
    """What the runtime needs from a peer transport. See the module docstring for the promises."""

    @property
    def events(self) -> trio.MemoryReceiveChannel[TransportEvent]:
        """Inbound messages and reports; it ends (``EndOfChannel``) when the transport closes."""
        ...

    def send(self, messages: Sequence[Message]) -> None:
        """Queue messages for their destinations; never blocks.

        Every message must have ``src`` equal to this node's id (``ValueError`` otherwise);
        a closed transport raises ``trio.ClosedResourceError``.
        """

    def add_peer(self, node_id: int, url: str) -> None:
        """Learn (or update) a member's peer URL. Also forgives an earlier ``remove_peer``."""

    def remove_peer(self, node_id: int) -> None:
        """Forget a member; from now on it is refused as a removed member."""

    def statistics(self) -> TransportStatistics:
        """Counters: messages, snapshots and refusals."""
        ...
