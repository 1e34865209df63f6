"""``RawNode``: the core's public face, and the ``Ready`` contract.

Inputs are method calls: ``tick``, ``step`` (a message from a peer), ``propose``,
``propose_conf_change``, ``read_index``, ``campaign``, ``transfer_leadership``,
``report_unreachable``, ``report_snapshot``. Output is one batch at a time::

    if node.has_ready():
        rd = node.ready()
        # 0. rd.messages may be sent at any time from here on, before persisting too
        # 1. persist: rd.snapshot, then rd.entries, then rd.hard_state (fsync if rd.must_sync)
        # 2. send rd.persisted_messages (and rd.messages, if not sent yet)
        # 3. apply: restore rd.snapshot into the state machine, then rd.committed_entries;
        #    hand rd.read_states to waiting readers (each is safe once applied >= its index)
        node.advance(rd)

Why this order: a message may promise something only durable state can keep (a vote, an
acknowledged entry), so such a message waits in ``persisted_messages`` until the batch is on
disk; entries are applied only after they are durable here too. The core decides where each
message is made (``Raft._send`` / ``Raft._send_early``, as etcd-io/raft's ``msgsAfterAppend``
and raft-rs's ``persisted_messages``): ``messages`` holds what promises nothing (a leader's
``AppendEntries``, ``Heartbeat`` and ``InstallSnapshot``, a follower's forwarded ``Propose``
and ``ReadIndexRequest``), so the runtime may overlap its own disk write with the followers'
(thesis §10.2.1). Such a message still waits when it would say more than the sender's disk
backs: a term this Ready is making durable, or (a lone voter's) commit index beyond its durable
log. A Ready with nothing to make durable but the commit index (``must_sync`` false) puts every
message in ``messages``: no message promises a commit index.

Between ``ready()`` and ``advance(rd)`` the node accepts no input
(``ReadyContractError``): the batch it handed out is exactly what ``advance`` settles. Proposals
and messages that arrive meanwhile wait in the runtime's queues and go into the next batch,
which is how many client requests come to share one fsync.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from ._config import Config
from ._errors import InvalidConfig, ReadyContractError
from ._logstore import LogStore, MemoryLogStore
from ._messages import Message
from ._progress import ProgressView
from ._raft import Raft
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
    SoftState,
)

__all__ = ["RawNode", "Ready", "Status", "bootstrap"]


@dataclass(frozen=True, slots=True)
class Ready:
    """One batch of work for the runtime; see the module docstring for the order.

    ``messages`` may be sent at once, before this Ready is persisted; ``persisted_messages``
    only once its snapshot, entries and hard state are durable.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    committed_entries: tuple[Entry, ...] = ()
    messages: tuple[Message, ...] = ()
    persisted_messages: tuple[Message, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    id: int
    role: Role
    term: int
    leader: int | None
    vote: int | None
    commit: int
    applied: int
    last_index: int
    conf_state: ConfState
    # Per member, on the leader only (empty elsewhere): match index etc., self included.
    progress: dict[int, ProgressView] = field(default_factory=dict)
    lead_transferee: int | None = None
    removed: bool = False


def bootstrap(store: MemoryLogStore, voters: Mapping[int, bytes]) -> tuple[HardState, list[Entry]]:
    """Write the initial configuration into an empty store, as committed entries 1..n.

    Every founding member must call this with the same ``voters`` (id -> context, e.g. the peer
    URL), so that their logs start identical. A node that joins later starts empty and learns
    the configuration from the leader. Returns what was written, for the runtime to persist.

    A configuration that cannot work (no voter, an id that is not an integer >= 1) raises
    ``InvalidConfig``; a store that already holds a log raises ``ValueError`` (that is not a
    configuration mistake but the wrong store).
    """
    if not voters:
        raise InvalidConfig("bootstrap needs at least one voter")
    bad = [node for node in voters if type(node) is not int or node < 1]
    if bad:
        raise InvalidConfig(f"voter ids must be integers >= 1, got {bad!r}")
    if store.last_index() != 0 or store.snapshot().metadata.index != 0:
        raise ValueError("bootstrap needs an empty log store")
    entries = [
        Entry(1, i, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_VOTER, node, ctx).encode())
        for i, (node, ctx) in enumerate(sorted(voters.items()), 1)
    ]
    hard_state = HardState(term=1, vote=None, commit=len(entries))
    store.append(entries)
    store.set_hard_state(hard_state)
    return hard_state, entries


class RawNode:
    """A Raft node with no I/O. ``rng`` decides election timeouts; seed it for determinism.

    ``applied`` is the index the state machine has already applied (at least the snapshot's):
    committed entries after it are handed out again on start.
    """

    def __init__(
        self, config: Config, log_store: LogStore, rng: random.Random, applied: int = 0
    ) -> None:
        self._raft = Raft(config, log_store, rng, applied)
        self._prev_soft = SoftState(None, Role.FOLLOWER)
        self._outstanding: Ready | None = None

    # -- observation ------------------------------------------------------------------------------

    @property
    def id(self) -> int:
        return self._raft.id

    @property
    def role(self) -> Role:
        return self._raft.role

    @property
    def term(self) -> int:
        return self._raft.term

    @property
    def leader(self) -> int | None:
        return self._raft.lead

    @property
    def conf_state(self) -> ConfState:
        """The configuration in force: the one as of the applied index."""
        return self._raft.tracker.conf

    @property
    def removed(self) -> bool:
        """True once this node applied (or was told of) its own removal; the runtime stops it."""
        return self._raft.removal.removed

    @property
    def removed_at(self) -> int:
        """The index at which this node applied its own removal; 0 while it is a member. A
        node with ``removed_at`` but not yet ``removed`` lingers until a peer confirms."""
        return self._raft.removal.removed_at

    @property
    def applied(self) -> int:
        return self._raft.log.applied

    @property
    def commit(self) -> int:
        return self._raft.log.committed

    @property
    def last_index(self) -> int:
        return self._raft.log.last_index()

    def status(self) -> Status:
        r = self._raft
        return Status(
            id=r.id,
            role=r.role,
            term=r.term,
            leader=r.lead,
            vote=r.vote,
            commit=r.log.committed,
            applied=r.log.applied,
            last_index=r.log.last_index(),
            conf_state=r.tracker.conf,
            progress=r.tracker.view() if r.role is Role.LEADER else {},
            lead_transferee=r.lead_transferee,
            removed=r.removal.removed,
        )

    # -- inputs -----------------------------------------------------------------------------------

    def _check_input(self) -> None:
        if self._outstanding is not None:
            raise ReadyContractError("call advance(ready) before giving the node new input")

    def tick(self) -> None:
        """One unit of logical time; the runtime calls this every tick interval."""
        self._check_input()
        self._raft.tick()

    def step(self, message: Message) -> None:
        """Feed a message from a peer. Never raises for bad remote input: it is dropped."""
        self._check_input()
        if message.dst != self._raft.id:
            return
        self._raft.step(message)

    def campaign(self) -> None:
        """Start an election now (with a pre-vote poll first if enabled)."""
        self._check_input()
        self._raft.hup(transfer=False)

    def propose(self, data: bytes) -> EntryId | None:
        """Propose a command. On the leader, returns the new entry's id; on a follower the
        proposal is forwarded to the leader and None is returned (its id is learned only when it
        is applied). Raises ``ProposalDropped`` (``NotLeader`` when no leader is known) when the
        proposal cannot enter the log."""
        self._check_input()
        return self._raft.propose(data)

    def propose_conf_change(self, change: ConfChange) -> EntryId:
        """Propose a single-server membership change (leader only).

        Raises ``NotLeader`` or ``ConfChangeRefused`` (another change pending, the leader has not
        committed an entry of its term, the last voter would go)."""
        self._check_input()
        return self._raft.propose_conf_change(change)

    def read_index(self, context: bytes) -> None:
        """Ask for a linearizable read point; answered as a ``ReadState`` with the same
        ``context`` in a later Ready. Contexts must be unique among pending reads."""
        self._check_input()
        self._raft.read_index(context)

    def transfer_leadership(self, to: int) -> None:
        """Hand leadership to ``to`` (leader only); abandoned after an election timeout."""
        self._check_input()
        self._raft.transfer_leadership(to)

    def report_unreachable(self, peer: int) -> None:
        """A message to ``peer`` was lost; stop streaming to it and probe instead."""
        self._check_input()
        self._raft.report_unreachable(peer)

    def report_removed(self, by: int) -> None:
        """Peer ``by`` refused this node as a removed member (it applied the removal): stop
        lingering; ``removed`` becomes true."""
        self._check_input()
        self._raft.removal.confirmed(by)

    def report_snapshot(self, peer: int, ok: bool) -> None:
        """The snapshot sent to ``peer`` was delivered (ok) or failed."""
        self._check_input()
        self._raft.report_snapshot(peer, ok)

    # -- output -----------------------------------------------------------------------------------

    def _hard_state(self) -> HardState:
        r = self._raft
        return HardState(r.term, r.vote, r.log.committed)

    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False
        r = self._raft
        r.flush()
        return bool(
            r.msgs
            or r.msgs_after_persist
            or r.log.unstable
            or r.log.pending_snapshot is not None
            or r.read_states
            or r.log.has_next_committed_entries()
            or self._hard_state() != self._raft.stable_hard_state
            or SoftState(r.lead, r.role) != self._prev_soft
        )

    def ready(self) -> Ready:
        """The next batch. Call ``advance(rd)`` once it is handled."""
        if self._outstanding is not None:
            raise ReadyContractError("ready() called twice without advance()")
        r = self._raft
        r.flush()
        soft = SoftState(r.lead, r.role)
        hard = self._hard_state()
        entries = tuple(r.log.unstable)
        snapshot = r.log.pending_snapshot
        must_sync = bool(
            entries
            or snapshot is not None
            or hard.term != self._raft.stable_hard_state.term
            or hard.vote != self._raft.stable_hard_state.vote
        )
        messages, persisted = r.take_messages()
        if not must_sync and persisted:
            # Nothing for them to wait for: this batch makes no promise durable.
            messages, persisted = messages + persisted, ()
        rd = Ready(
            soft_state=soft if soft != self._prev_soft else None,
            hard_state=hard if hard != self._raft.stable_hard_state else None,
            entries=entries,
            snapshot=snapshot,
            committed_entries=tuple(
                r.log.next_committed_entries(r.config.max_committed_size_per_ready)
            ),
            messages=messages,
            persisted_messages=persisted,
            read_states=tuple(r.read_states),
            must_sync=must_sync,
        )
        r.read_states = []
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """Declare ``rd`` persisted, sent and applied."""
        if self._outstanding is None:
            raise ReadyContractError("advance() without a pending ready()")
        if rd is not self._outstanding:
            raise ReadyContractError("advance() with a Ready that is not the last one handed out")
        self._outstanding = None
        r = self._raft
        if rd.soft_state is not None:
            self._prev_soft = rd.soft_state
        if rd.hard_state is not None:
            self._raft.stable_hard_state = rd.hard_state
        r.log.stable_to(rd.entries[-1].index if rd.entries else None, rd.snapshot is not None)
        r.applied_to(rd.committed_entries, rd.snapshot)
