"""``Cluster``: a pure, seedable simulator of a Raft cluster built from ``raftkv.core.RawNode``.

The simulator *is* the runtime and the network. ``Cluster`` is the public face: every public
operation is also a scenario command (``raftkv.testing._scenario``), recorded in the transcript.
The work is done by one object per capability:

* ``Nodes`` (``_simnode``): the servers, their disks (``MemoryLogStore``, surviving crashes) and
  memories (``RawNode`` and ``KVStateMachine``, lost on a crash); start, crash, restart;
* ``Network`` (``_network``): the messages in flight and the cuts between nodes; deliver, drop,
  duplicate, partition;
* ``SimDriver`` (``_driver``): the Ready handling, by the contract or in the runtime's order
  (``early_send``: ``Ready.messages`` sent before persisting), optionally crashing a node
  between the two halves;
* ``ClientHistory`` (``_clients``): client writes and reads, their completion, the
  linearizability check;
* ``Transcript`` (``_transcript``): the run in the data-driven format, replayable;
* ``InvariantChecker`` (``_invariants``): Raft's safety properties after every operation.

Determinism: node ids are iterated in sorted order, each node's ``random.Random`` is seeded from
(seed, id, incarnation), and nothing reads a clock. The same seed and the same operations give
the same transcript, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Generic, TypeVar, overload

from raftkv.core import (
    ConfChange,
    ConfChangeType,
    Config,
    EntryId,
    InvalidConfig,
    MemoryLogStore,
    Message,
    ProposalDropped,
    RawNode,
    ReadOnlyOption,
    Role,
    bootstrap,
)

from ._clients import ClientHistory, ClientOp
from ._driver import SimDriver
from ._invariants import InvariantChecker
from ._lincheck import Op
from ._liveness import LivenessFailure, check_liveness
from ._network import Network, filter_args
from ._observe import describe_log, describe_progress, kv_line, snapshot_line, status_line
from ._setup import figure_log
from ._simnode import Nodes, SimNode
from ._transcript import Transcript

__all__ = ["ClientOp", "Cluster", "LivenessFailure", "SimNode", "StabilizeError"]


T = TypeVar("T")


class StabilizeError(AssertionError):
    """``stabilize`` did not reach quiescence within its bound (a livelock)."""


_CONFIG_FIELDS = {f.name for f in fields(Config)} - {"id"}


def _fmt_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, ReadOnlyOption):
        return v.value
    return str(v)


class _Via(Generic[T]):
    """A ``Cluster`` attribute that one of its parts keeps (``Cluster.in_flight`` is
    ``Cluster.network.in_flight``): one owner for each fact."""

    def __init__(self, part: str, name: str) -> None:
        self._part = part
        self._name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _Via[T]: ...

    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...

    def __get__(self, obj: object | None, objtype: type | None = None) -> T | _Via[T]:
        if obj is None:
            return self
        value: T = getattr(getattr(obj, self._part), self._name)
        return value

    def __set__(self, obj: object, value: T) -> None:
        setattr(getattr(obj, self._part), self._name, value)


def _ids(node_ids: Sequence[int]) -> str:
    return "".join(f" {i}" for i in node_ids)


class Cluster:
    """N simulated Raft nodes and the network between them.

    >>> c = Cluster(3, seed=1)
    >>> c.elect(1)  # the term
    2
    >>> op = c.propose(2, b"x=hello")  # forwarded to the leader
    >>> c.stabilize()
    >>> c.nodes[3].sm.get("x"), op.ret is not None
    ('hello', True)

    ``config`` overrides ``raftkv.core.Config`` fields for every node (``election_ticks=5``, ...).
    ``early_send=True`` handles every Ready in the runtime's order (``Ready.messages`` sent
    before persisting) instead of the contract order. ``record=False`` stops recording the
    transcript's output (the command ``script`` is still kept, for replay, unless
    ``script=False``); ``history=False`` stops recording client operations;
    ``check_invariants=False`` skips the invariant checks. All four off make the hot path lean
    for benchmarks.
    """

    def __init__(
        self,
        n: int = 3,
        *,
        seed: int = 0,
        early_send: bool = False,
        check_invariants: bool = True,
        record: bool = True,
        history: bool = True,
        script: bool = True,
        **config: Any,
    ) -> None:
        unknown = set(config) - _CONFIG_FIELDS
        if unknown:
            raise TypeError(f"unknown Config fields: {sorted(unknown)}")
        if n < 1:
            raise InvalidConfig("a cluster needs at least one node")
        self.seed = seed
        self._config = dict(config)
        Config(id=1, **config)  # validate once, early
        self.invariants: InvariantChecker | None = InvariantChecker() if check_invariants else None
        self.transcript_recorder = Transcript(
            record=record, script=script, on_command_end=self._after_command
        )
        self.node_set = Nodes(seed, self.node_config, self.invariants)
        self.nodes: dict[int, SimNode] = self.node_set.by_id
        self.network = Network(self.nodes, self.transcript_recorder)
        self.clients = ClientHistory(self.transcript_recorder, enabled=history)
        self.driver = SimDriver(self.node_set, self.network, self.clients, early_send=early_send)
        args = [f"n={n}", f"seed={seed}"] + (["early_send=true"] if early_send else [])
        args += [f"{k}={_fmt_value(v)}" for k, v in sorted(config.items())]
        with self._command("cluster " + " ".join(args)):
            voters = {i: f"node{i}".encode() for i in range(1, n + 1)}
            for i in range(1, n + 1):
                store = MemoryLogStore()
                bootstrap(store, voters)
                self.node_set.add(i, store)
            # Apply the bootstrap configuration everywhere, quietly.
            with self.transcript_recorder.quiet():
                for i in self.ids:
                    self.driver.process(self.nodes[i])

    # -- plumbing ----------------------------------------------------------------------------------

    def _command(self, line: str) -> Any:
        return self.transcript_recorder.command(line)

    def _emit(self, line: str) -> None:
        self.transcript_recorder.emit(line)

    def _after_command(self) -> None:
        self.network.flush_snapshot_reports()
        inv = self.invariants
        if inv is not None:
            for i in self.ids:
                raw = self.nodes[i].raw
                if raw is not None:
                    inv.check_node(i, raw)

    # -- state, for tests and tools ----------------------------------------------------------------

    # State kept by the parts, readable (and settable) here as it always was: the messages in
    # flight (oldest first, positions as ``deliver_at`` takes them), the cut links, the client
    # history, the logical clock, the Ready order, the transcript.
    in_flight: _Via[list[Message]] = _Via("network", "in_flight")
    cuts: _Via[set[tuple[int, int]]] = _Via("network", "cuts")
    history: _Via[list[ClientOp] | None] = _Via("clients", "ops")
    clock: _Via[int] = _Via("clients", "clock")
    read_states_seen: _Via[int] = _Via("clients", "read_states_seen")
    early_send: _Via[bool] = _Via("driver", "early_send")
    script: _Via[list[str]] = _Via("transcript_recorder", "script")
    cases: _Via[list[tuple[str, str]]] = _Via("transcript_recorder", "cases")
    last_output: _Via[str] = _Via("transcript_recorder", "last_output")

    def node_config(self, node_id: int) -> Config:
        """The ``Config`` node ``node_id`` runs with (the cluster's overrides)."""
        return Config(id=node_id, **self._config)

    @property
    def ids(self) -> list[int]:
        """Every node id the cluster knows, sorted."""
        return list(self.node_set.order)

    @property
    def up_ids(self) -> list[int]:
        return self.node_set.up_ids()

    def raw(self, node_id: int) -> RawNode:
        """The running RawNode of ``node_id`` (raises if the node is down)."""
        raw = self.nodes[node_id].raw
        if raw is None:
            raise ValueError(f"node {node_id} is down")
        return raw

    def leader(self) -> int | None:
        """The up node that is leader in the highest term, if any."""
        best: tuple[int, int] | None = None
        for i in self.node_set.order:
            raw = self.nodes[i].raw
            if raw is not None and raw.role is Role.LEADER and (best is None or raw.term > best[0]):
                best = (raw.term, i)
        return None if best is None else best[1]

    def members(self) -> tuple[int, ...]:
        """The members of the most recent configuration applied by any up node."""
        best: tuple[int, tuple[int, ...]] = (-1, ())
        for i in self.node_set.order:
            raw = self.nodes[i].raw
            if raw is not None and raw.applied > best[0]:
                best = (raw.applied, raw.conf_state.members)
        return best[1]

    # -- Ready handling ----------------------------------------------------------------------------

    def process_ready(self, *node_ids: int, early: bool | None = None, crash: bool = False) -> bool:
        """Handle one Ready of each named node (of every up node when none is named), in order.
        ``early`` overrides the cluster's ``early_send`` for these Readys; ``crash`` crashes
        each node between the two halves of its Ready (see ``raftkv.testing._driver``).
        Returns True if any Ready was handled."""
        line = "process-ready" + _ids(node_ids)
        line += "" if early is None else (" early" if early else " in-order")
        line += " crash" if crash else ""
        with self._command(line):
            handled = False
            for i in node_ids or self.ids:
                handled = self.driver.process(self.nodes[i], early=early, crash=crash) or handled
            return handled

    def stabilize(self, *node_ids: int, quiet: bool = False, max_rounds: int = 1000) -> None:
        """Handle Readys and deliver messages among ``node_ids`` (all) until nothing moves.

        Each round handles one Ready per node, then delivers every message in flight to those
        nodes (grouped by receiver, oldest first). Raises ``StabilizeError`` after
        ``max_rounds`` rounds without quiescence.
        """
        line = "stabilize" + _ids(node_ids) + (" quiet" if quiet else "")
        with self._command(line), self.transcript_recorder.quiet(quiet):
            self._stabilize(node_ids, max_rounds)

    def _stabilize(self, node_ids: Sequence[int], max_rounds: int) -> None:
        only = set(node_ids)
        net = self.network
        for _ in range(max_rounds):
            progressed = False
            for i in self.node_set.order:
                if not only or i in only:
                    progressed = self.driver.process(self.nodes[i]) or progressed
            net.flush_snapshot_reports()
            if net.in_flight:
                batch = net.take(net.select(tuple(only))) if only else net.take_all()
                if batch:
                    batch.sort(key=lambda m: m.dst)  # stable: FIFO per receiver
                    net.deliver(batch)
                    progressed = True
            net.flush_snapshot_reports()
            if not progressed:
                return
        raise StabilizeError(f"no quiescence after {max_rounds} rounds")

    def settle(self) -> None:
        """Stabilize everything, with a generous bound and no output (for compound checks)."""
        with self.transcript_recorder.quiet():
            self._stabilize((), 10_000)

    # -- the network -------------------------------------------------------------------------------

    def deliver(
        self, *to: int, src: int | None = None, kind: str | None = None, count: int | None = None
    ) -> int:
        """Deliver the in-flight messages that match (all by default), oldest first."""
        with self._command("deliver" + filter_args(to, src, kind, count)):
            net = self.network
            return net.deliver(net.take(net.select(to, src, kind, count)))

    def deliver_at(self, pos: int) -> None:
        """Deliver the message at position ``pos`` of the in-flight list (reordering)."""
        with self._command(f"deliver-at {pos}"):
            self.network.deliver([self.network.in_flight.pop(pos)])

    def drop(
        self, *to: int, src: int | None = None, kind: str | None = None, count: int | None = None
    ) -> int:
        """Lose the matching in-flight messages."""
        with self._command("drop" + filter_args(to, src, kind, count)):
            net = self.network
            return net.drop(net.take(net.select(to, src, kind, count)))

    def drop_at(self, pos: int) -> None:
        with self._command(f"drop-at {pos}"):
            self.network.drop([self.network.in_flight.pop(pos)])

    def duplicate(
        self, *to: int, src: int | None = None, kind: str | None = None, count: int | None = None
    ) -> int:
        """Append a copy of each matching in-flight message to the end of the list."""
        with self._command("duplicate" + filter_args(to, src, kind, count)):
            return self.network.duplicate(self.network.select(to, src, kind, count))

    def duplicate_at(self, pos: int) -> None:
        with self._command(f"duplicate-at {pos}"):
            self.network.duplicate([pos])

    def msgs(self) -> list[Message]:
        """List the in-flight messages with their positions (in the transcript)."""
        with self._command("msgs"):
            return self.network.show()

    def partition(self, *groups: Sequence[int]) -> None:
        """Replace the network's cuts: nodes in different groups cannot talk (both directions).

        Nodes named in no group form one more group together. Messages in flight across a new
        cut are lost.
        """
        with self._command("partition " + " ".join(",".join(map(str, g)) for g in groups)):
            self.network.partition(groups, self.ids)

    def cut(self, src: int, dst: int) -> None:
        """Cut the link one way: messages from ``src`` to ``dst`` are lost."""
        with self._command(f"cut {src} {dst}"):
            self.network.cut((src, dst))

    def isolate(self, node_id: int) -> None:
        """Cut ``node_id`` off from everyone, both ways (keeps other cuts)."""
        with self._command(f"isolate {node_id}"):
            others = [i for i in self.ids if i != node_id]
            self.network.cut(*[(node_id, o) for o in others], *[(o, node_id) for o in others])

    def heal(self) -> None:
        """Remove every cut."""
        with self._command("heal"):
            self.network.heal()

    # -- time and node lifecycle -------------------------------------------------------------------

    def tick(self, *node_ids: int, n: int = 1) -> None:
        """Tick the given up nodes (every up node when none is named) ``n`` times."""
        with self._command("tick" + _ids(node_ids) + (f" n={n}" if n != 1 else "")):
            for _ in range(n):
                self.tick_all(node_ids)

    def tick_all(self, node_ids: Sequence[int] = ()) -> None:
        """Tick the given up nodes (all when none is named) once; records nothing."""
        nodes = self.nodes
        for i in node_ids or self.node_set.order:
            raw = nodes[i].raw
            if raw is not None:
                raw.tick()

    def run(self, *node_ids: int, n: int = 1) -> None:
        """Let time pass with a working network: ``n`` times, tick the given up nodes (all when
        none is named) once, then stabilize the whole cluster. Prints nothing."""
        with self._command("run" + _ids(node_ids) + (f" n={n}" if n != 1 else "")):
            for _ in range(n):
                self.tick_all(node_ids)
                self.settle()

    def crash(self, node_id: int) -> None:
        """Crash: the RawNode and the state machine are lost; the store (disk) survives."""
        with self._command(f"crash {node_id}"):
            node = self.nodes[node_id]
            if node.raw is None:
                self._emit(f"{node_id} is already down")
                return
            self.node_set.crash(node)

    def restart(self, node_id: int) -> None:
        """Start a crashed node again from its store (the restart recipe)."""
        with self._command(f"restart {node_id}"):
            node = self.nodes[node_id]
            if node.raw is not None:
                self._emit(f"{node_id} is already up")
            elif node.removed:
                self._emit(f"{node_id} was removed; not restarted")
            else:
                self.node_set.restart(node)

    def campaign(self, node_id: int) -> None:
        with self._command(f"campaign {node_id}"):
            self.raw(node_id).campaign()

    # -- client operations -------------------------------------------------------------------------

    def unique_value(self, prefix: str = "v") -> str:
        """A value never handed out before in this cluster (writes must be unique)."""
        return self.clients.unique_value(prefix)

    def propose(self, node_id: int, data: bytes) -> ClientOp | None:
        """Propose ``data`` at ``node_id``. A ``key=value`` write is recorded in the history."""
        with self._command(f"propose {node_id} {data.decode('utf-8', 'replace')}"):
            return self.clients.propose(self.nodes[node_id], data)

    def propose_batch(self, node_id: int, batch: Sequence[bytes]) -> None:
        """Propose many commands at once (no history, no transcript output): for benchmarks."""
        with self._command(f"propose-batch {node_id} {len(batch)}"):
            propose = self.raw(node_id).propose
            for data in batch:
                propose(data)

    def read(self, node_id: int, key: str = "x") -> ClientOp:
        """A linearizable read of ``key`` at ``node_id`` through ReadIndex."""
        with self._command(f"read {node_id} {key}"):
            return self.clients.read(self.nodes[node_id], key)

    def show_history(self) -> None:
        """The client operations so far."""
        with self._command("history"):
            self.clients.show()

    def client_history(self) -> list[Op]:
        """The history for the linearizability checker: ops that certainly failed are left out."""
        return self.clients.client_history()

    def check_history(self) -> None:
        """Raise unless the client history is linearizable and has no stale read."""
        with self._command("check-history"):
            self.clients.check()

    # -- membership and leadership -----------------------------------------------------------------

    def _conf_change(self, line: str, change: ConfChange, via: int | None) -> EntryId | None:
        with self._command(line + (f" via={via}" if via is not None else "")):
            at = via if via is not None else self.leader()
            if at is None:
                self._emit("refused: no leader")
                return None
            raw = self.nodes[at].raw
            if raw is None:
                self._emit(f"{at}: refused: node down")
                return None
            try:
                eid = raw.propose_conf_change(change)
            except ProposalDropped as exc:
                self._emit(f"{at}: refused: {exc.reason}")
                return None
            kind = change.type.name.lower().replace("_", "-")
            self._emit(f"{at}: proposed {kind} {change.node_id} as {eid.term}/{eid.index}")
            if change.node_id not in self.nodes and change.type is not ConfChangeType.REMOVE_NODE:
                # A joining node starts with an empty store: it learns everything from the leader.
                self.node_set.add(change.node_id, MemoryLogStore())
            return eid

    def add_learner(self, node_id: int, via: int | None = None) -> EntryId | None:
        change = ConfChange(ConfChangeType.ADD_LEARNER, node_id, f"node{node_id}".encode())
        return self._conf_change(f"add-learner {node_id}", change, via)

    def add_member(self, node_id: int, via: int | None = None) -> EntryId | None:
        """Add ``node_id`` directly as a voter."""
        change = ConfChange(ConfChangeType.ADD_VOTER, node_id, f"node{node_id}".encode())
        return self._conf_change(f"add-member {node_id}", change, via)

    def promote(self, node_id: int, via: int | None = None) -> EntryId | None:
        """Promote learner ``node_id`` to voter."""
        change = ConfChange(ConfChangeType.ADD_VOTER, node_id, f"node{node_id}".encode())
        return self._conf_change(f"promote {node_id}", change, via)

    def remove(self, node_id: int, via: int | None = None) -> EntryId | None:
        change = ConfChange(ConfChangeType.REMOVE_NODE, node_id)
        return self._conf_change(f"remove {node_id}", change, via)

    def transfer(self, to: int, via: int | None = None) -> bool:
        """Ask the leader (or ``via``) to hand leadership to ``to``."""
        with self._command(f"transfer {to}" + (f" via={via}" if via is not None else "")):
            at = via if via is not None else self.leader()
            if at is None or self.nodes[at].raw is None:
                self._emit("refused: no leader")
                return False
            try:
                self.raw(at).transfer_leadership(to)
            except ProposalDropped as exc:
                self._emit(f"{at}: refused: {exc.reason}")
                return False
            self._emit(f"{at}: transferring leadership to {to}")
            return True

    def report_unreachable(self, node_id: int, peer: int) -> None:
        with self._command(f"report-unreachable {node_id} {peer}"):
            self.raw(node_id).report_unreachable(peer)

    def report_snapshot(self, node_id: int, peer: int, ok: bool) -> None:
        with self._command(f"report-snapshot {node_id} {peer} {'ok' if ok else 'fail'}"):
            self.raw(node_id).report_snapshot(peer, ok)

    # -- snapshots ---------------------------------------------------------------------------------

    def compact(self, node_id: int, keep: int = 0) -> int:
        """Snapshot ``node_id``'s state machine at its applied index, then drop the log up to
        ``applied - keep``. Returns the snapshot's index (0 if the node is down)."""
        with self._command(f"compact {node_id}" + (f" keep={keep}" if keep else "")):
            return self._snapshot(node_id, keep)

    def snapshot(self, node_id: int) -> int:
        """Snapshot ``node_id``'s state machine at its applied index; keep the whole log."""
        with self._command(f"snapshot {node_id}"):
            return self._snapshot(node_id, None)

    def _snapshot(self, node_id: int, keep: int | None) -> int:
        node = self.nodes[node_id]
        if node.raw is None:
            self._emit(f"{node_id}: down")
            return 0
        self.node_set.snapshot(node, keep)
        self._emit(f"{node_id}: {snapshot_line(node.store)}")
        return node.store.snapshot().metadata.index

    # -- compound operations -----------------------------------------------------------------------

    def elect(self, node_id: int) -> int:
        """Make ``node_id`` the leader (transfer if another leads, else campaign), stabilize,
        and return the term. Raises ``AssertionError`` if it did not win."""
        with self._command(f"elect {node_id}"):
            with self.transcript_recorder.quiet():
                lead = self.leader()
                if lead is not None and lead != node_id:
                    self.transfer(node_id, via=lead)
                elif lead is None:
                    self.campaign(node_id)
                self._stabilize((), 1000)
            raw = self.raw(node_id)
            if raw.role is not Role.LEADER:
                raise AssertionError(f"elect: {node_id} did not become leader ({raw.role.value})")
            self._emit(self.status_line(node_id))
            return raw.term

    def check_liveness(self, timeouts: int = 10) -> int:
        """Heal the network, restart crashed members, and require that a leader emerges within
        ``timeouts`` election timeouts and that a new proposal commits on every up member.
        Returns the leader's id; raises ``LivenessFailure``."""
        with self._command(f"check-liveness timeouts={timeouts}"):
            with self.transcript_recorder.quiet():
                lead, ticks, done = check_liveness(self, timeouts)
            self._emit(
                f"leader {lead} after {ticks} ticks; {done.decode()} applied on every member"
            )
            return lead

    # -- observation -------------------------------------------------------------------------------

    def status_line(self, node_id: int) -> str:
        return status_line(self.nodes[node_id])

    def status(self, *node_ids: int) -> None:
        """One line per node: role, term, leader, vote, commit, applied, last index, config."""
        with self._command("status" + _ids(node_ids)):
            for i in node_ids or self.ids:
                self._emit(self.status_line(i))

    def progress(self, node_id: int) -> None:
        """The leader's view of each member's progress."""
        with self._command(f"progress {node_id}"):
            for line in describe_progress(node_id, self.raw(node_id)):
                self._emit(line)

    def log(self, node_id: int) -> None:
        """The durable log of a node: its snapshot, entries and hard state."""
        with self._command(f"log {node_id}"):
            for line in describe_log(self.nodes[node_id].store):
                self._emit(line)

    def kv(self, *node_ids: int) -> None:
        """The state machine of each up node."""
        with self._command("kv" + _ids(node_ids)):
            for i in node_ids or self.ids:
                self._emit(kv_line(self.nodes[i]))

    # -- transcripts -------------------------------------------------------------------------------

    def transcript(self) -> str:
        """Everything recorded so far, in the scenario format."""
        return self.transcript_recorder.text()

    def script_text(self) -> str:
        """The commands so far, as a scenario file whose outputs are still to be filled in
        (replay it with ``RAFTKV_REWRITE=1`` to fill them)."""
        return self.transcript_recorder.script_text()

    # -- scenario setup ----------------------------------------------------------------------------

    def set_log(
        self,
        node_id: int,
        terms: Sequence[int],
        *,
        term: int | None = None,
        vote: int | None = None,
        commit: int | None = None,
    ) -> None:
        """Replace a DOWN node's durable log by entries with the given terms (index 1 first).

        Entries that some node already holds at the same (index, term) are copied from it, so
        bootstrap configuration entries and shared history stay identical; other entries get the
        payload ``t<term>``. For figure-style scenarios (Raft paper Figures 7 and 8).
        """
        line = f"set-log {node_id} terms=({','.join(map(str, terms))})"
        line += f" term={term}" if term is not None else ""
        line += f" vote={vote}" if vote is not None else ""
        line += f" commit={commit}" if commit is not None else ""
        with self._command(line):
            node = self.nodes[node_id]
            if node.raw is not None:
                raise ValueError(f"set-log needs node {node_id} down (crash it first)")
            others = [self.nodes[i].store for i in self.ids]
            old_commit = node.store.hard_state.commit
            store = figure_log(terms, others, old_commit, term=term, vote=vote, commit=commit)
            self.node_set.replace_store(node, store)
