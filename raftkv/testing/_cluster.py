"""``Cluster``: a pure, seedable simulator of a Raft cluster built from ``raftkv.core.RawNode``.

The simulator *is* the runtime and the network. Every node has a ``MemoryLogStore`` (its disk,
which survives crashes), a ``RawNode`` and a ``KVStateMachine`` (both lost on a crash). Messages
sent by nodes go into one list of in-flight messages; nothing is delivered unless the test says
so, in any order: that is how the tests reorder, drop, duplicate and delay messages. Handling a
node's Ready follows the contract exactly: persist (snapshot, entries, hard state) -> send ->
apply -> advance.

Client operations (writes ``key=value`` and ReadIndex reads) are recorded in a history with
invocation and return times on one logical clock, for the linearizability checker. A write
returns when the node it was proposed on applies it; a read returns when the node that asked for
it has a ``ReadState`` and has applied up to its index (the value is then read from its state
machine).

Every public operation is also a scenario command: the cluster records a transcript in the
data-driven format (``cmd args`` / ``----`` / output), so any run, including one driven by
Hypothesis, can be replayed (``raftkv.testing.replay``) and saved as a scenario file.

Determinism: node ids are iterated in sorted order, each node's ``random.Random`` is seeded from
(seed, id, incarnation), and nothing reads a clock. The same seed and the same operations give
the same transcript, byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from raftkv.core import (
    ConfChange,
    ConfChangeType,
    Config,
    Entry,
    EntryId,
    EntryType,
    HardState,
    InstallSnapshot,
    InvalidConfig,
    MemoryLogStore,
    Message,
    ProposalDropped,
    RawNode,
    ReadOnlyOption,
    Ready,
    Role,
    bootstrap,
    describe,
)
from raftkv.core._describe import describe_conf_state, describe_entries, describe_hard_state

from ._datadriven import format_case
from ._invariants import InvariantChecker, _term_in
from ._lincheck import Op, OpKind, check_linearizable, check_stale_reads
from ._statemachine import KVStateMachine, parse_put

__all__ = ["ClientOp", "Cluster", "LivenessFailure", "SimNode", "StabilizeError"]


class StabilizeError(AssertionError):
    """``stabilize`` did not reach quiescence within its bound (a livelock)."""


class LivenessFailure(AssertionError):
    """After the faults stopped, the cluster did not elect a leader or commit a proposal."""


@dataclass(slots=True)
class ClientOp:
    """A client operation in the simulator's history (see ``raftkv.testing.Op``)."""

    id: int
    kind: OpKind
    node: int
    key: str
    value: str | None
    invoke: int
    ret: int | None = None
    # Writes: the log position once known; reads: the read index once the ReadState arrived.
    index: int | None = None
    entry: EntryId | None = None
    # Set when the operation certainly failed (refused, or its entry was overwritten).
    error: str | None = None

    @property
    def name(self) -> str:
        return f"#{self.id}"

    def to_op(self) -> Op:
        index = self.index if self.kind is OpKind.WRITE else None
        return Op(self.id, self.kind, self.key, self.value, self.invoke, self.ret, index)


class SimNode:
    """One simulated server: its durable store, and (while up) its RawNode and state machine."""

    __slots__ = (
        "config",
        "id",
        "incarnation",
        "raw",
        "reads",
        "reads_waiting",
        "removed",
        "sm",
        "store",
        "writes_by_data",
        "writes_by_index",
    )

    def __init__(self, node_id: int, config: Config, store: MemoryLogStore) -> None:
        self.id = node_id
        self.config = config
        self.store = store
        self.raw: RawNode | None = None
        self.sm = KVStateMachine()
        self.incarnation = 0
        self.removed = False
        # Client operations waiting on this node (lost when it crashes).
        self.writes_by_index: dict[int, ClientOp] = {}
        self.writes_by_data: dict[bytes, ClientOp] = {}
        self.reads: dict[bytes, ClientOp] = {}
        self.reads_waiting: list[ClientOp] = []

    @property
    def up(self) -> bool:
        return self.raw is not None


_CONFIG_FIELDS = {f.name for f in fields(Config)} - {"id"}
_DEFAULTS = Config(id=1)


def _fmt_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, ReadOnlyOption):
        return v.value
    return str(v)


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
    ``record=False`` stops recording the transcript's output (the command ``script`` is still
    kept, for replay, unless ``script=False``); ``history=False`` stops recording client
    operations; ``check_invariants=False`` skips the invariant checks. All four off make the hot
    path lean for benchmarks.
    """

    def __init__(
        self,
        n: int = 3,
        *,
        seed: int = 0,
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
        self.nodes: dict[int, SimNode] = {}
        self._order: list[int] = []
        self.in_flight: list[Message] = []
        self.cuts: set[tuple[int, int]] = set()
        self.history: list[ClientOp] | None = [] if history else None
        # Writes not yet seen applied anywhere, by command bytes (to learn their log index).
        self._unplaced: dict[bytes, ClientOp] = {}
        self._next_op = 1
        self._values = 0
        self.clock = 0
        self.invariants: InvariantChecker | None = InvariantChecker() if check_invariants else None
        self._stores: dict[int, MemoryLogStore] = {}
        if self.invariants is not None:
            self.invariants.attach(self._stores)
        self._snapshot_reports: list[tuple[int, int, bool]] = []
        # Counters (cheap; for benchmarks and tests).
        self.read_states_seen = 0
        # Transcript: every top-level operation as (command line, output).
        self._record = record
        self._keep_script = script
        self._line = ""
        self.script: list[str] = []
        self.cases: list[tuple[str, str]] = []
        self._out: list[str] | None = None
        self._depth = 0
        self.last_output = ""

        args = [f"n={n}", f"seed={seed}"]
        args += [f"{k}={_fmt_value(v)}" for k, v in sorted(config.items())]
        top = self._begin("cluster " + " ".join(args))
        try:
            voters = {i: f"node{i}".encode() for i in range(1, n + 1)}
            for i in range(1, n + 1):
                store = MemoryLogStore()
                bootstrap(store, voters)
                self._add(i, store)
            # Apply the bootstrap configuration everywhere, quietly.
            out, self._out = self._out, None
            for i in self._order:
                self.process_ready(i)
            self._out = out
        finally:
            self._end(top)

    # -- bookkeeping -------------------------------------------------------------------------------

    def node_config(self, node_id: int) -> Config:
        """The ``Config`` node ``node_id`` runs with (the cluster's overrides)."""
        return Config(id=node_id, **self._config)

    def _add(self, node_id: int, store: MemoryLogStore) -> SimNode:
        node = SimNode(node_id, self.node_config(node_id), store)
        self.nodes[node_id] = node
        self._order = sorted(self.nodes)
        self._stores[node_id] = store
        self._start(node)
        return node

    def _start(self, node: SimNode) -> None:
        store = node.store
        snap = store.snapshot()
        rng = random.Random(f"{self.seed}/{node.id}/{node.incarnation}")
        node.raw = RawNode(node.config, store, rng, applied=snap.metadata.index)
        node.sm = KVStateMachine.restore(snap.data)
        if self.invariants is not None:
            self.invariants.on_start(node.id, store, node.raw)

    def _begin(self, line: str) -> bool:
        top = self._depth == 0
        self._depth += 1
        if top:
            self._line = line
            if self._keep_script:
                self.script.append(line)
            if self._record:
                self._out = []
        return top

    def _end(self, top: bool) -> None:
        self._depth -= 1
        if not top:
            return
        self._flush_snapshot_reports()
        if self.invariants is not None:
            inv = self.invariants
            for i in self._order:
                raw = self.nodes[i].raw
                if raw is not None:
                    inv.check_node(i, raw)
        if self._out is not None:
            self.last_output = "\n".join(self._out)
            self.cases.append((self._line, self.last_output))
            self._out = None

    def _emit(self, line: str) -> None:
        if self._out is not None:
            self._out.append(line)

    def _tick_clock(self) -> int:
        self.clock += 1
        return self.clock

    @property
    def ids(self) -> list[int]:
        """Every node id the cluster knows, sorted."""
        return list(self._order)

    @property
    def up_ids(self) -> list[int]:
        return [i for i in self._order if self.nodes[i].raw is not None]

    def raw(self, node_id: int) -> RawNode:
        """The running RawNode of ``node_id`` (raises if the node is down)."""
        raw = self.nodes[node_id].raw
        if raw is None:
            raise ValueError(f"node {node_id} is down")
        return raw

    def leader(self) -> int | None:
        """The up node that is leader in the highest term, if any."""
        best: tuple[int, int] | None = None
        for i in self._order:
            raw = self.nodes[i].raw
            if raw is not None and raw.role is Role.LEADER and (best is None or raw.term > best[0]):
                best = (raw.term, i)
        return None if best is None else best[1]

    # -- Ready handling ----------------------------------------------------------------------------

    def process_ready(self, *node_ids: int) -> bool:
        """Handle one Ready of each named node (of every up node when none is named), in order.
        Returns True if any Ready was handled."""
        top = self._begin("process-ready" + "".join(f" {i}" for i in node_ids))
        try:
            handled = False
            for i in node_ids or self._order:
                handled = self._process_ready(self.nodes[i]) or handled
            return handled
        finally:
            self._end(top)

    def _process_ready(self, node: SimNode) -> bool:
        raw = node.raw
        if raw is None or not raw.has_ready():
            return False
        rd = raw.ready()
        out = self._out
        if out is not None:
            out.append(f"> {node.id} handling Ready")
            out.extend("  " + line for line in describe(rd).split("\n"))
        store = node.store
        inv = self.invariants
        # 1. persist
        if inv is not None:
            inv.before_persist(node.id, store, raw, rd)
        if rd.snapshot is not None:
            store.apply_snapshot(rd.snapshot)
        if rd.entries:
            store.append(rd.entries)
        if rd.hard_state is not None:
            store.set_hard_state(rd.hard_state)
        if inv is not None:
            inv.after_persist(node.id, store, raw, rd)
        # 2. send
        if rd.messages:
            self._send(node, rd.messages)
        if rd.persisted_messages:
            self._send(node, rd.persisted_messages)
        # 3. apply
        self._apply(node, rd)
        # 4. advance
        raw.advance(rd)
        if inv is not None:
            inv.after_advance(node.id, raw)
        if raw.removed and not raw.has_ready():
            self._stop_removed(node)
        return True

    def _send(self, node: SimNode, messages: Sequence[Message]) -> None:
        inv = self.invariants
        cuts = self.cuts
        in_flight = self.in_flight
        for m in messages:
            if inv is not None:
                inv.on_send(node.id, node.store, m)
            if cuts and (m.src, m.dst) in cuts:
                self._lost(m)
                continue
            in_flight.append(m)

    def _apply(self, node: SimNode, rd: Ready) -> None:
        inv = self.invariants
        if rd.snapshot is not None:
            node.sm = KVStateMachine.restore(rd.snapshot.data)
            if inv is not None:
                inv.on_restore(node.id, rd.snapshot, node.sm.digest)
            self._emit(f"  {node.id} restored its state machine from the snapshot")
        sm = node.sm
        track = self.history is not None and (node.writes_by_index or node.writes_by_data)
        unplaced = self._unplaced
        for e in rd.committed_entries:
            put = sm.apply(e)
            if inv is not None:
                inv.on_apply(node.id, e, sm.digest)
            if put is not None and unplaced:
                op = unplaced.pop(e.data, None)
                if op is not None:
                    op.index = e.index
            if track:
                self._complete_write(node, e)
        if rd.read_states:
            self.read_states_seen += len(rd.read_states)
            for rs in rd.read_states:
                op = node.reads.pop(rs.context, None)
                if op is not None:
                    op.index = rs.index
                    node.reads_waiting.append(op)
        if node.reads_waiting:
            self._complete_reads(node)

    def _complete_write(self, node: SimNode, e: Entry) -> None:
        op = node.writes_by_index.pop(e.index, None)
        if op is not None:
            if op.entry == e.id:
                self._ack_write(node, op, e)
                return
            # Another entry took our slot: ours can never commit (Log Matching).
            op.error = f"overwritten by {e.term}/{e.index}"
            node.writes_by_data.pop(e.data, None)
            self._emit(f"  {op.name} lost: {op.error}")
        if e.type is EntryType.NORMAL and e.data:
            op = node.writes_by_data.pop(e.data, None)
            if op is not None:
                if op.entry is not None:
                    node.writes_by_index.pop(op.entry.index, None)
                self._ack_write(node, op, e)

    def _ack_write(self, node: SimNode, op: ClientOp, e: Entry) -> None:
        node.writes_by_data.pop(e.data, None)
        op.index = e.index
        op.entry = e.id
        op.ret = self._tick_clock()
        self._emit(f"  {op.name} {op.key}={op.value} acked at {e.term}/{e.index}")

    def _complete_reads(self, node: SimNode) -> None:
        applied = node.sm.applied
        waiting = []
        for op in node.reads_waiting:
            assert op.index is not None
            if op.index <= applied:
                op.value = node.sm.get(op.key)
                op.ret = self._tick_clock()
                self._emit(f"  {op.name} read {op.key}={op.value} at index {op.index}")
            else:
                waiting.append(op)
        node.reads_waiting = waiting

    def _stop_removed(self, node: SimNode) -> None:
        self._emit(f"  {node.id} was removed from the cluster: stopped")
        self._drop_client_ops(node)
        node.raw = None
        node.removed = True

    # -- the network -------------------------------------------------------------------------------

    def _lost(self, m: Message) -> None:
        """A message vanished; a lost snapshot is reported to its sender (as a transport would)."""
        if isinstance(m, InstallSnapshot):
            self._snapshot_reports.append((m.src, m.dst, False))

    def _flush_snapshot_reports(self) -> None:
        """Tell senders how their snapshots fared, as the transport does once a snapshot stream
        ends (``RawNode.report_snapshot``). Done between Readys, never inside one."""
        while self._snapshot_reports:
            src, dst, ok = self._snapshot_reports.pop(0)
            node = self.nodes.get(src)
            if node is not None and node.raw is not None:
                node.raw.report_snapshot(dst, ok)
                self._emit(f"  {src} told: snapshot to {dst} {'delivered' if ok else 'failed'}")

    def _select(
        self,
        to: Sequence[int] = (),
        src: int | None = None,
        kind: str | None = None,
        count: int | None = None,
    ) -> list[int]:
        """Positions of the in-flight messages that match, oldest first."""
        out = []
        for pos, m in enumerate(self.in_flight):
            if to and m.dst not in to:
                continue
            if src is not None and m.src != src:
                continue
            if kind is not None and type(m).__name__ != kind:
                continue
            out.append(pos)
            if count is not None and len(out) >= count:
                break
        return out

    @staticmethod
    def _filter_args(
        to: Sequence[int], src: int | None, kind: str | None, count: int | None
    ) -> str:
        args = [str(i) for i in to]
        if src is not None:
            args.append(f"from={src}")
        if kind is not None:
            args.append(f"type={kind}")
        if count is not None:
            args.append(f"count={count}")
        return (" " + " ".join(args)) if args else ""

    def _take(self, positions: Sequence[int]) -> list[Message]:
        chosen = set(positions)
        taken = [m for pos, m in enumerate(self.in_flight) if pos in chosen]
        self.in_flight = [m for pos, m in enumerate(self.in_flight) if pos not in chosen]
        return taken

    def _deliver(self, messages: Sequence[Message]) -> int:
        """Step each message into its destination, in order. Returns how many arrived."""
        arrived = 0
        out = self._out
        last_dst = -1
        for m in messages:
            dst = m.dst
            if out is not None and dst != last_dst:
                out.append(f"> {dst} receiving messages")
                last_dst = dst
            node = self.nodes.get(dst)
            if node is None or node.raw is None:
                if out is not None:
                    out.append(f"  {describe(m)} (dropped: {dst} is down)")
                self._lost(m)
                continue
            if self.cuts and (m.src, dst) in self.cuts:
                if out is not None:
                    out.append(f"  {describe(m)} (dropped: link cut)")
                self._lost(m)
                continue
            sender = self.nodes.get(m.src)
            leaving = sender.raw if sender is not None else None
            if (
                leaving is not None
                and leaving.removed_at
                and node.raw.applied >= leaving.removed_at
                and m.src not in node.raw.conf_state.members
            ):
                # As a transport does: a peer that applied the sender's removal refuses it and
                # says so, which ends the removed node's lingering.
                if out is not None:
                    out.append(f"  {describe(m)} (refused: {m.src} was removed)")
                self._lost(m)
                leaving.report_removed(dst)
                continue
            if out is not None:
                out.append(f"  {describe(m)}")
            node.raw.step(m)
            if isinstance(m, InstallSnapshot):
                self._snapshot_reports.append((m.src, dst, True))
            arrived += 1
        return arrived

    def deliver(
        self,
        *to: int,
        src: int | None = None,
        kind: str | None = None,
        count: int | None = None,
    ) -> int:
        """Deliver the in-flight messages that match (all by default), oldest first."""
        top = self._begin("deliver" + self._filter_args(to, src, kind, count))
        try:
            return self._deliver(self._take(self._select(to, src, kind, count)))
        finally:
            self._end(top)

    def deliver_at(self, pos: int) -> None:
        """Deliver the message at position ``pos`` of the in-flight list (reordering)."""
        top = self._begin(f"deliver-at {pos}")
        try:
            self._deliver([self.in_flight.pop(pos)])
        finally:
            self._end(top)

    def drop(
        self,
        *to: int,
        src: int | None = None,
        kind: str | None = None,
        count: int | None = None,
    ) -> int:
        """Lose the matching in-flight messages."""
        top = self._begin("drop" + self._filter_args(to, src, kind, count))
        try:
            return self._drop(self._take(self._select(to, src, kind, count)))
        finally:
            self._end(top)

    def drop_at(self, pos: int) -> None:
        top = self._begin(f"drop-at {pos}")
        try:
            self._drop([self.in_flight.pop(pos)])
        finally:
            self._end(top)

    def _drop(self, messages: Sequence[Message]) -> int:
        for m in messages:
            self._emit(f"dropped {describe(m)}")
            self._lost(m)
        return len(messages)

    def duplicate(
        self,
        *to: int,
        src: int | None = None,
        kind: str | None = None,
        count: int | None = None,
    ) -> int:
        """Append a copy of each matching in-flight message to the end of the list."""
        top = self._begin("duplicate" + self._filter_args(to, src, kind, count))
        try:
            copies = [self.in_flight[p] for p in self._select(to, src, kind, count)]
            for m in copies:
                self._emit(f"duplicated {describe(m)}")
            self.in_flight.extend(copies)
            return len(copies)
        finally:
            self._end(top)

    def duplicate_at(self, pos: int) -> None:
        top = self._begin(f"duplicate-at {pos}")
        try:
            m = self.in_flight[pos]
            self._emit(f"duplicated {describe(m)}")
            self.in_flight.append(m)
        finally:
            self._end(top)

    def msgs(self) -> list[Message]:
        """List the in-flight messages with their positions (in the transcript)."""
        top = self._begin("msgs")
        try:
            for pos, m in enumerate(self.in_flight):
                self._emit(f"{pos}: {describe(m)}")
            return list(self.in_flight)
        finally:
            self._end(top)

    def _cut_in_flight(self) -> None:
        kept = []
        dropped = 0
        for m in self.in_flight:
            if (m.src, m.dst) in self.cuts:
                self._lost(m)
                dropped += 1
            else:
                kept.append(m)
        self.in_flight = kept
        if dropped:
            self._emit(f"dropped {dropped} message(s) in flight across the cut")

    def partition(self, *groups: Sequence[int]) -> None:
        """Replace the network's cuts: nodes in different groups cannot talk (both directions).

        Nodes named in no group form one more group together. Messages in flight across a new
        cut are lost.
        """
        line = "partition " + " ".join(",".join(str(i) for i in g) for g in groups)
        top = self._begin(line)
        try:
            named = {i for g in groups for i in g}
            rest = [i for i in self._order if i not in named]
            all_groups = [set(g) for g in groups] + ([set(rest)] if rest else [])
            where = {i: k for k, g in enumerate(all_groups) for i in g}
            self.cuts = {(a, b) for a in where for b in where if a != b and where[a] != where[b]}
            self._cut_in_flight()
        finally:
            self._end(top)

    def cut(self, src: int, dst: int) -> None:
        """Cut the link one way: messages from ``src`` to ``dst`` are lost."""
        top = self._begin(f"cut {src} {dst}")
        try:
            self.cuts.add((src, dst))
            self._cut_in_flight()
        finally:
            self._end(top)

    def isolate(self, node_id: int) -> None:
        """Cut ``node_id`` off from everyone, both ways (keeps other cuts)."""
        top = self._begin(f"isolate {node_id}")
        try:
            for other in self._order:
                if other != node_id:
                    self.cuts.add((node_id, other))
                    self.cuts.add((other, node_id))
            self._cut_in_flight()
        finally:
            self._end(top)

    def heal(self) -> None:
        """Remove every cut."""
        top = self._begin("heal")
        try:
            self.cuts = set()
        finally:
            self._end(top)

    # -- time and node lifecycle -------------------------------------------------------------------

    def tick(self, *node_ids: int, n: int = 1) -> None:
        """Tick the given up nodes (every up node when none is named) ``n`` times."""
        line = "tick" + "".join(f" {i}" for i in node_ids) + (f" n={n}" if n != 1 else "")
        top = self._begin(line)
        try:
            targets = node_ids or tuple(self._order)
            nodes = self.nodes
            for _ in range(n):
                for i in targets:
                    raw = nodes[i].raw
                    if raw is not None:
                        raw.tick()
        finally:
            self._end(top)

    def run(self, *node_ids: int, n: int = 1) -> None:
        """Let time pass with a working network: ``n`` times, tick the given up nodes (all when
        none is named) once, then stabilize the whole cluster. Prints nothing."""
        line = "run" + "".join(f" {i}" for i in node_ids) + (f" n={n}" if n != 1 else "")
        top = self._begin(line)
        out, self._out = self._out, None
        try:
            targets = node_ids or tuple(self._order)
            for _ in range(n):
                for i in targets:
                    raw = self.nodes[i].raw
                    if raw is not None:
                        raw.tick()
                self._stabilize((), 10_000)
        finally:
            self._out = out
            self._end(top)

    def crash(self, node_id: int) -> None:
        """Crash: the RawNode and the state machine are lost; the store (disk) survives."""
        top = self._begin(f"crash {node_id}")
        try:
            node = self.nodes[node_id]
            if node.raw is None:
                self._emit(f"{node_id} is already down")
                return
            self._drop_client_ops(node)
            node.raw = None
        finally:
            self._end(top)

    def _drop_client_ops(self, node: SimNode) -> None:
        # Writes may still commit (outcome unknown); reads simply never answer.
        node.writes_by_index.clear()
        node.writes_by_data.clear()
        node.reads.clear()
        node.reads_waiting.clear()

    def restart(self, node_id: int) -> None:
        """Start a crashed node again from its store (the restart recipe)."""
        top = self._begin(f"restart {node_id}")
        try:
            node = self.nodes[node_id]
            if node.raw is not None:
                self._emit(f"{node_id} is already up")
                return
            if node.removed:
                self._emit(f"{node_id} was removed; not restarted")
                return
            node.incarnation += 1
            self._start(node)
        finally:
            self._end(top)

    def campaign(self, node_id: int) -> None:
        top = self._begin(f"campaign {node_id}")
        try:
            self.raw(node_id).campaign()
        finally:
            self._end(top)

    # -- client operations -------------------------------------------------------------------------

    def unique_value(self, prefix: str = "v") -> str:
        """A value never handed out before in this cluster (writes must be unique)."""
        self._values += 1
        return f"{prefix}{self._values}"

    def _new_op(self, kind: OpKind, node_id: int, key: str, value: str | None) -> ClientOp:
        op = ClientOp(self._next_op, kind, node_id, key, value, self._tick_clock())
        self._next_op += 1
        if self.history is not None:
            self.history.append(op)
        return op

    def propose(self, node_id: int, data: bytes) -> ClientOp | None:
        """Propose ``data`` at ``node_id``. A ``key=value`` write is recorded in the history."""
        top = self._begin(f"propose {node_id} {data.decode('utf-8', 'replace')}")
        try:
            node = self.nodes[node_id]
            raw = node.raw
            put = parse_put(data) if self.history is not None else None
            op = self._new_op(OpKind.WRITE, node_id, *put) if put is not None else None
            what = f"{op.name} " if op is not None else ""
            if raw is None:
                if op is not None:
                    op.error = "node down"
                self._emit(f"{node_id}: {what}refused: node down")
                return op
            try:
                eid = raw.propose(data)
            except ProposalDropped as exc:
                if op is not None:
                    op.error = exc.reason
                self._emit(f"{node_id}: {what}refused: {exc.reason}")
                return op
            if op is not None:
                op.entry = eid
                node.writes_by_data[data] = op
                self._unplaced[data] = op
                if eid is not None:
                    node.writes_by_index[eid.index] = op
            if self._out is not None:
                if eid is not None:
                    self._emit(f"{node_id}: {what}proposed as {eid.term}/{eid.index}")
                else:
                    self._emit(f"{node_id}: {what}forwarded to {raw.leader}")
            return op
        finally:
            self._end(top)

    def propose_batch(self, node_id: int, batch: Sequence[bytes]) -> None:
        """Propose many commands at once (no history, no transcript output): for benchmarks."""
        top = self._begin(f"propose-batch {node_id} {len(batch)}")
        try:
            propose = self.raw(node_id).propose
            for data in batch:
                propose(data)
        finally:
            self._end(top)

    def read(self, node_id: int, key: str = "x") -> ClientOp:
        """A linearizable read of ``key`` at ``node_id`` through ReadIndex."""
        top = self._begin(f"read {node_id} {key}")
        try:
            node = self.nodes[node_id]
            op = self._new_op(OpKind.READ, node_id, key, None)
            if node.raw is None:
                op.error = "node down"
                self._emit(f"{node_id}: {op.name} refused: node down")
                return op
            ctx = f"r{op.id}".encode()
            try:
                node.raw.read_index(ctx)
            except ProposalDropped as exc:
                op.error = exc.reason
                self._emit(f"{node_id}: {op.name} refused: {exc.reason}")
                return op
            node.reads[ctx] = op
            self._emit(f"{node_id}: {op.name} read {key} pending (ctx {ctx.decode()})")
            return op
        finally:
            self._end(top)

    # -- membership and leadership -----------------------------------------------------------------

    def _via(self, via: int | None) -> int | None:
        if via is not None:
            return via
        return self.leader()

    def _conf_change(self, line: str, change: ConfChange, via: int | None) -> EntryId | None:
        top = self._begin(line + (f" via={via}" if via is not None else ""))
        try:
            at = self._via(via)
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
                self._add(change.node_id, MemoryLogStore())
            return eid
        finally:
            self._end(top)

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
        top = self._begin(f"transfer {to}" + (f" via={via}" if via is not None else ""))
        try:
            at = self._via(via)
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
        finally:
            self._end(top)

    def report_unreachable(self, node_id: int, peer: int) -> None:
        top = self._begin(f"report-unreachable {node_id} {peer}")
        try:
            self.raw(node_id).report_unreachable(peer)
        finally:
            self._end(top)

    def report_snapshot(self, node_id: int, peer: int, ok: bool) -> None:
        top = self._begin(f"report-snapshot {node_id} {peer} {'ok' if ok else 'fail'}")
        try:
            self.raw(node_id).report_snapshot(peer, ok)
        finally:
            self._end(top)

    # -- snapshots ---------------------------------------------------------------------------------

    def compact(self, node_id: int, keep: int = 0) -> int:
        """Snapshot ``node_id``'s state machine at its applied index, then drop the log up to
        ``applied - keep``. Returns the snapshot's index (0 if the node is down)."""
        top = self._begin(f"compact {node_id}" + (f" keep={keep}" if keep else ""))
        try:
            return self._snapshot(node_id, keep)
        finally:
            self._end(top)

    def snapshot(self, node_id: int) -> int:
        """Snapshot ``node_id``'s state machine at its applied index; keep the whole log."""
        top = self._begin(f"snapshot {node_id}")
        try:
            return self._snapshot(node_id, None)
        finally:
            self._end(top)

    def _snapshot(self, node_id: int, keep: int | None) -> int:
        # The runtime's recipe, between Readys: create_snapshot(applied, conf_state, data),
        # then compact(applied - keep).
        node = self.nodes[node_id]
        raw = node.raw
        if raw is None:
            self._emit(f"{node_id}: down")
            return 0
        store = node.store
        applied = raw.applied
        if applied > store.snapshot().metadata.index:
            snap = store.create_snapshot(applied, raw.conf_state, node.sm.snapshot())
            if self.invariants is not None:
                self.invariants.on_snapshot_created(node_id, snap, node.sm.digest)
        if keep is not None:
            store.compact(min(applied - keep, store.snapshot().metadata.index))
        meta = store.snapshot().metadata
        self._emit(
            f"{node_id}: snapshot at {meta.term}/{meta.index} "
            f"{describe_conf_state(meta.conf_state)}; log starts at {store.first_index()}"
        )
        return meta.index

    # -- compound operations -----------------------------------------------------------------------

    def stabilize(self, *node_ids: int, quiet: bool = False, max_rounds: int = 1000) -> None:
        """Handle Readys and deliver messages among ``node_ids`` (all) until nothing moves.

        Each round handles one Ready per node, then delivers every message in flight to those
        nodes (grouped by receiver, oldest first). Raises ``StabilizeError`` after
        ``max_rounds`` rounds without quiescence.
        """
        line = "stabilize" + "".join(f" {i}" for i in node_ids) + (" quiet" if quiet else "")
        top = self._begin(line)
        out = self._out
        if quiet:
            self._out = None
        try:
            self._stabilize(node_ids, max_rounds)
        finally:
            self._out = out
            self._end(top)

    def _stabilize(self, node_ids: Sequence[int], max_rounds: int) -> None:
        only = set(node_ids)
        for _ in range(max_rounds):
            progressed = False
            for i in self._order:
                if not only or i in only:
                    progressed = self._process_ready(self.nodes[i]) or progressed
            self._flush_snapshot_reports()
            if self.in_flight:
                if only:
                    batch = self._take(self._select(tuple(only)))
                else:
                    batch = self.in_flight
                    self.in_flight = []
                if batch:
                    batch.sort(key=lambda m: m.dst)  # stable: FIFO per receiver
                    self._deliver(batch)
                    progressed = True
            self._flush_snapshot_reports()
            if not progressed:
                return
        raise StabilizeError(f"no quiescence after {max_rounds} rounds")

    def elect(self, node_id: int) -> int:
        """Make ``node_id`` the leader (transfer if another leads, else campaign), stabilize,
        and return the term. Raises ``AssertionError`` if it did not win."""
        top = self._begin(f"elect {node_id}")
        out = self._out
        self._out = None
        try:
            lead = self.leader()
            if lead is not None and lead != node_id:
                self.transfer(node_id, via=lead)
            elif lead is None:
                self.campaign(node_id)
            self._stabilize((), 1000)
            raw = self.raw(node_id)
            if raw.role is not Role.LEADER:
                raise AssertionError(f"elect: {node_id} did not become leader ({raw.role.value})")
            self._out = out
            self._emit(self._status_line(node_id))
            return raw.term
        finally:
            self._out = out
            self._end(top)

    # -- observation -------------------------------------------------------------------------------

    def _status_line(self, node_id: int) -> str:
        node = self.nodes[node_id]
        raw = node.raw
        if raw is None:
            return f"{node_id}: {'removed' if node.removed else 'down'}"
        lead = raw.leader if raw.leader is not None else "-"
        st = raw.status()
        vote = st.vote if st.vote is not None else "-"
        return (
            f"{node_id}: {raw.role.value} term={raw.term} lead={lead} vote={vote} "
            f"commit={raw.commit} applied={raw.applied} last={raw.last_index} "
            f"{describe_conf_state(raw.conf_state)}"
        )

    def status(self, *node_ids: int) -> None:
        """One line per node: role, term, leader, vote, commit, applied, last index, config."""
        top = self._begin("status" + "".join(f" {i}" for i in node_ids))
        try:
            for i in node_ids or self._order:
                self._emit(self._status_line(i))
        finally:
            self._end(top)

    def progress(self, node_id: int) -> None:
        """The leader's view of each member's progress."""
        top = self._begin(f"progress {node_id}")
        try:
            st = self.raw(node_id).status()
            if not st.progress:
                self._emit(f"{node_id}: not the leader")
            for peer, pr in st.progress.items():
                learner = " learner" if pr.is_learner else ""
                self._emit(f"{peer}: {pr.state.value} match={pr.match} next={pr.next}{learner}")
        finally:
            self._end(top)

    def log(self, node_id: int) -> None:
        """The durable log of a node: its snapshot, entries and hard state."""
        top = self._begin(f"log {node_id}")
        try:
            store = self.nodes[node_id].store
            snap = store.snapshot()
            if not snap.is_empty:
                self._emit(describe(snap))
            first, last = store.first_index(), store.last_index()
            entries = store.entries(first, last + 1) if last >= first else []
            self._emit("entries " + describe_entries(entries))
            self._emit("hard-state " + describe_hard_state(store.hard_state))
        finally:
            self._end(top)

    def kv(self, *node_ids: int) -> None:
        """The state machine of each up node."""
        top = self._begin("kv" + "".join(f" {i}" for i in node_ids))
        try:
            for i in node_ids or self._order:
                node = self.nodes[i]
                if node.raw is None:
                    self._emit(f"{i}: {'removed' if node.removed else 'down'}")
                else:
                    self._emit(f"{i}: {node.sm.describe()}")
        finally:
            self._end(top)

    def show_history(self) -> None:
        """The client operations so far."""
        top = self._begin("history")
        try:
            for op in self.history or ():
                ret = "?" if op.ret is None else str(op.ret)
                what = "write" if op.kind is OpKind.WRITE else "read"
                status = f" failed: {op.error}" if op.error else ""
                self._emit(
                    f"{op.name} {what} {op.key}={op.value} at {op.node} [{op.invoke},{ret}]{status}"
                )
        finally:
            self._end(top)

    # -- checks ------------------------------------------------------------------------------------

    def client_history(self) -> list[Op]:
        """The history for the linearizability checker: ops that certainly failed are left out."""
        return [op.to_op() for op in self.history or () if op.error is None]

    def check_history(self) -> None:
        """Raise unless the client history is linearizable and has no stale read."""
        top = self._begin("check-history")
        try:
            history = self.client_history()
            check_linearizable(history)
            check_stale_reads(history)
            done = sum(1 for op in history if op.ret is not None)
            self._emit(f"{len(history)} operations ({done} answered): linearizable")
        finally:
            self._end(top)

    def members(self) -> tuple[int, ...]:
        """The members of the most recent configuration applied by any up node."""
        best: tuple[int, tuple[int, ...]] = (-1, ())
        for i in self._order:
            raw = self.nodes[i].raw
            if raw is not None and raw.applied > best[0]:
                best = (raw.applied, raw.conf_state.members)
        return best[1]

    def check_liveness(self, timeouts: int = 10) -> int:
        """Heal the network, restart crashed members, and require that a leader emerges within
        ``timeouts`` election timeouts and that a new proposal commits on every up member.
        Returns the leader's id; raises ``LivenessFailure``."""
        top = self._begin(f"check-liveness timeouts={timeouts}")
        out = self._out
        self._out = None
        try:
            self.cuts = set()
            for node in self.nodes.values():
                if node.raw is None and not node.removed:
                    node.incarnation += 1
                    self._start(node)
            self._stabilize((), 10_000)
            election = self.node_config(1).election_ticks
            lead = None
            ticks = 0
            for ticks in range(timeouts * election + 1):  # noqa: B007
                lead = self._stable_leader()
                if lead is not None:
                    break
                self._tick_all()
                self._stabilize((), 10_000)
            if lead is None:
                raise LivenessFailure(
                    f"no leader within {timeouts} election timeouts after healing: "
                    + "; ".join(self._status_line(i) for i in self._order)
                )
            # A new proposal must reach every member. Pending membership changes may still move
            # leadership (a removed leader steps down): re-propose to each new leader.
            proposed: dict[int, bytes] = {}
            done: bytes | None = None
            for _ in range(timeouts * election):
                self._stabilize((), 10_000)
                lead = self._stable_leader()
                if lead is not None:
                    done = next(
                        (d for d in proposed.values() if self._applied_everywhere(lead, d)), None
                    )
                    if done is not None:
                        break
                    term = self.raw(lead).term
                    if term not in proposed:
                        proposed[term] = f"liveness=t{term}c{self.clock}".encode()
                        try:
                            self.raw(lead).propose(proposed[term])
                        except ProposalDropped:
                            del proposed[term]  # e.g. a transfer started meanwhile: retry
                        else:
                            continue
                self._tick_all()
            if done is None or lead is None:
                raise LivenessFailure(
                    f"no new proposal reached every member (leader {lead}): "
                    + "; ".join(self._status_line(i) for i in self._order)
                )
            self._out = out
            self._emit(
                f"leader {lead} after {ticks} ticks; {done.decode()} applied on every member"
            )
            return lead
        finally:
            self._out = out
            self._end(top)

    def _stable_leader(self) -> int | None:
        lead = self.leader()
        if lead is None:
            return None
        raw = self.raw(lead)
        if raw.status().lead_transferee is not None or lead not in raw.conf_state.voters:
            return None  # handing over, or a removed leader retiring
        # It must lead with an entry of its own term committed (it can serve writes and reads).
        return lead if _term_in(self.nodes[lead].store, raw.commit) == raw.term else None

    def _applied_everywhere(self, lead: int, data: bytes) -> bool:
        for i in self.raw(lead).conf_state.members:
            node = self.nodes.get(i)
            if node is not None and node.raw is not None and data not in node.sm.seen:
                return False
        return True

    def _tick_all(self) -> None:
        for i in self._order:
            raw = self.nodes[i].raw
            if raw is not None:
                raw.tick()

    # -- transcripts -------------------------------------------------------------------------------

    def transcript(self) -> str:
        """Everything recorded so far, in the scenario format."""
        return "".join(format_case(cmd, out) + "\n\n" for cmd, out in self.cases)

    def script_text(self) -> str:
        """The commands so far, as a scenario file whose outputs are still to be filled in
        (replay it with ``RAFTKV_REWRITE=1`` to fill them)."""
        return "".join(f"{cmd}\n----\nok\n\n" for cmd in self.script)

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
        top = self._begin(line)
        try:
            node = self.nodes[node_id]
            if node.raw is not None:
                raise ValueError(f"set-log needs node {node_id} down (crash it first)")
            entries = []
            for index, t in enumerate(terms, 1):
                entries.append(
                    self._known_entry(index, t) or Entry(t, index, data=f"t{t}".encode())
                )
            store = MemoryLogStore()
            store.append(entries)
            last_term = terms[-1] if terms else 0
            hs_term = max(term or 0, last_term, 1)
            old_commit = node.store.hard_state.commit
            hs_commit = min(old_commit, len(terms)) if commit is None else commit
            store.set_hard_state(HardState(hs_term, vote, hs_commit))
            node.store = store
            self._stores[node_id] = store
            if self.invariants is not None:
                self.invariants.reset_node(node_id, store)
        finally:
            self._end(top)

    def _known_entry(self, index: int, term: int) -> Entry | None:
        for i in self._order:
            store = self.nodes[i].store
            if store.first_index() <= index <= store.last_index() and store.term(index) == term:
                return store.entries(index, index + 1)[0]
        return None
