"""``ClientHistory``: the simulator's client operations, for the linearizability checker.

Writes ``key=value``, compare-and-sets ``key=value?expected``, transactions (``txn ... then ...
else ...``) and ReadIndex reads are recorded with invocation and return times on one logical
clock. A write returns when the node it was proposed on applies it (a compare-and-set or a
transaction with its outcome, a transaction with what it read); a read returns when the node that
asked for it has its ``ReadState`` and has applied up to its index (the value is then read from
its state machine). A write that never returns is a "maybe" operation. A write certainly fails
(and leaves the history) when it is refused, when its log slot was taken by another entry (Log
Matching: it can never commit), or when it is *dropped*: its node forwarded it in term T and
then applied an entry of a later term without having applied it (a leader appends a forwarded
proposal only in the term it was sent in, so it can never commit: the runtime answers
``ProposalDropped`` then). A write answered dropped that applies anywhere, ever, is a violation.
Operations waiting on a node that crashes never return (``lost``).

It also keeps the ``CommittedLog`` (the writes as committed, fed by the first node to apply each
index) and the ``Watchers``, and tells whether the fate of an operation is certain yet
(``fate``), as a client reading back after a leader change could.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.core import Entry, EntryId, ProposalDropped, ReadState, SnapshotMetadata

from ._committed import CommittedLog
from ._invariants import InvariantViolation
from ._lincheck import Op, OpKind, check_linearizable, check_stale_reads
from ._lockcheck import check_locks
from ._simnode import SimNode
from ._statemachine import Applied, Command, Pairs, Txn, parse_command
from ._transcript import Transcript
from ._watchers import Watchers

__all__ = ["ClientHistory", "ClientOp"]

DROPPED = "dropped: the leader changed; it will not apply"


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
    # Set when the operation certainly failed (refused, overwritten, dropped).
    error: str | None = None
    data: bytes = b""  # a write's command
    expected: str | None = None  # a compare-and-set's expected value
    ok: bool | None = None  # a compare-and-set's or a transaction's answer
    txn: Txn | None = None  # a transaction's compares and branches
    reads: Pairs = ()  # what an answered transaction read
    took_effect: bool | None = None  # whether it changed its register, once applied somewhere
    # The clock when it first applied anywhere (it committed before), and its outcome there.
    effect: int | None = None
    effect_ok: bool | None = None
    sent_term: int | None = None  # forwarded to the leader in this term
    # The clock when its client acted on its outcome before any answer came (learned from
    # the committed log: ``fate``); a late answer does not move that moment.
    settled: int | None = None
    lost: bool = False  # its node went down while it waited

    @property
    def name(self) -> str:
        return f"#{self.id}"

    @property
    def pending(self) -> bool:
        return self.ret is None and self.error is None

    @property
    def told(self) -> int | None:
        """When its client knew the outcome: the answer, or what it learned before one."""
        return self.settled if self.settled is not None else self.ret

    def to_op(self) -> Op:
        """The operation for the checker. A write that applied somewhere took effect by the
        time it first applied (it had committed then): that time is its return, whether or
        not its client saw an answer, which narrows the search without changing a verdict."""
        index = None
        ret, ok = self.ret, self.ok
        if self.kind is not OpKind.READ:
            if self.took_effect:
                index = self.index
            if self.effect is not None:
                ret, ok = self.effect, self.effect_ok
        if ret is None:
            ok = None
        txn = self.txn
        return Op(
            self.id,
            self.kind,
            self.key,
            self.value,
            self.invoke,
            ret,
            index,
            self.expected,
            ok,
            compares=txn.compares if txn else (),
            success=txn.success if txn else (),
            failure=txn.failure if txn else (),
            reads=self.reads if ret is not None else (),
        )


class ClientHistory:
    """Client operations by invocation; ``ops`` is None when the history is not kept."""

    def __init__(self, transcript: Transcript, *, enabled: bool) -> None:
        self._tx = transcript
        self.ops: list[ClientOp] | None = [] if enabled else None
        # Writes not yet seen applied anywhere, by command bytes (to learn their log index).
        self.unplaced: dict[bytes, ClientOp] = {}
        # Writes answered "dropped", by command bytes: none of them may ever apply.
        self.dropped: dict[bytes, ClientOp] = {}
        self.committed = CommittedLog()
        self.watchers = Watchers(self.committed, transcript)
        self._next_op = 1
        self._values = 0
        self.clock = 0
        # Read states handed out (cheap; for benchmarks).
        self.read_states_seen = 0

    def _tick_clock(self) -> int:
        self.clock += 1
        return self.clock

    def unique_value(self, prefix: str = "v") -> str:
        self._values += 1
        return f"{prefix}{self._values}"

    def _new_op(self, kind: OpKind, node_id: int, key: str, value: str | None) -> ClientOp:
        op = ClientOp(self._next_op, kind, node_id, key, value, self._tick_clock())
        self._next_op += 1
        if self.ops is not None:
            self.ops.append(op)
        return op

    def _new_write(self, node_id: int, command: Command | Txn, data: bytes) -> ClientOp:
        if isinstance(command, Txn):
            op = self._new_op(OpKind.TXN, node_id, min(command.keys), None)
            op.txn = command
        else:
            kind = OpKind.CAS if command.cas else OpKind.WRITE
            op = self._new_op(kind, node_id, command.key, command.value)
            op.expected = command.expected
        op.data = data
        return op

    # -- invocations -------------------------------------------------------------------------------

    def propose(self, node: SimNode, data: bytes) -> ClientOp | None:
        """Propose ``data`` at ``node``; a register command is recorded in the history."""
        command = parse_command(data) if self.ops is not None else None
        op = self._new_write(node.id, command, data) if command is not None else None
        what = f"{op.name} " if op is not None else ""
        raw = node.raw
        if raw is None:
            self._refused(node, op, what, "node down")
            return op
        try:
            eid = raw.propose(data)
        except ProposalDropped as exc:
            self._refused(node, op, what, exc.reason)
            return op
        if op is not None:
            op.entry = eid
            node.writes_by_data[data] = op
            self.unplaced[data] = op
            if eid is not None:
                node.writes_by_index[eid.index] = op
            else:
                op.sent_term = raw.term
                node.forwarded.append((raw.term, op))
        if eid is not None:
            self._tx.emit(f"{node.id}: {what}proposed as {eid.term}/{eid.index}")
        else:
            self._tx.emit(f"{node.id}: {what}forwarded to {raw.leader}")
        return op

    def read(self, node: SimNode, key: str) -> ClientOp:
        """A linearizable read of ``key`` at ``node`` through ReadIndex."""
        op = self._new_op(OpKind.READ, node.id, key, None)
        ctx = f"r{op.id}".encode()
        if node.raw is None:
            self._refused(node, op, f"{op.name} ", "node down")
            return op
        try:
            node.raw.read_index(ctx)
        except ProposalDropped as exc:
            self._refused(node, op, f"{op.name} ", exc.reason)
            return op
        node.reads[ctx] = op
        self._tx.emit(f"{node.id}: {op.name} read {key} pending (ctx {ctx.decode()})")
        return op

    def _refused(self, node: SimNode, op: ClientOp | None, what: str, reason: str) -> None:
        if op is not None:
            op.error = reason
        self._tx.emit(f"{node.id}: {what}refused: {reason}")

    # -- what nodes apply --------------------------------------------------------------------------

    def on_apply(self, node: SimNode, e: Entry, applied: Applied | None) -> None:
        """``node`` applied ``e`` (with this result): learn what it says about the writes."""
        if e.index > self.committed.index:
            self.committed.record(e, applied)
        if applied is not None:
            if self.unplaced:
                self._placed(e, applied)
            if self.dropped and e.data in self.dropped:
                self._dropped_applies(node, e)
            if applied.writes and self.watchers.watching(node.id):
                for key, value in applied.writes:
                    self.watchers.on_write(node.id, (e.index, key, value))
        if node.writes_by_index or node.writes_by_data:
            self._complete_write(node, e, applied)
        if node.forwarded and node.forwarded[0][0] < e.term:
            self._newer_term_applied(node, e.term)

    def on_restore(self, node: SimNode, meta: SnapshotMetadata) -> None:
        """``node`` restored a snapshot: it applied up to ``meta.index`` unseen. A write it
        forwarded in a term up to the snapshot's may be inside it: its fate is unknown here."""
        fwd = node.forwarded
        while fwd and fwd[0][0] <= meta.term:
            fwd.popleft()
        self.watchers.caught_up(node)

    def node_started(self, node: SimNode) -> None:
        """``node`` (re)started from its store: its watchers resume after their last event."""
        if self.ops is not None:
            self.watchers.caught_up(node)

    def _placed(self, e: Entry, applied: Applied) -> None:
        """The write of ``e``'s command sits at ``e.index`` (the first time it is applied)."""
        op = self.unplaced.pop(e.data, None)
        if op is not None:
            op.index = e.index
            # A transaction took effect either way (its reads and branch happened there).
            op.took_effect = applied.ok or op.kind is OpKind.TXN
            op.effect, op.effect_ok, op.reads = self.clock, applied.ok, applied.reads

    def _complete_write(self, node: SimNode, e: Entry, applied: Applied | None) -> None:
        """Answer the write waiting for ``e``, or fail the one it replaced."""
        op = node.writes_by_index.pop(e.index, None)
        if op is not None:
            if op.entry == e.id:
                self._ack_write(node, op, e, applied)
                return
            # Another entry took our slot: ours can never commit (Log Matching).
            op.error = f"overwritten by {e.term}/{e.index}"
            node.writes_by_data.pop(op.data, None)
            self._tx.emit(f"  {op.name} lost: {op.error}")
        if applied is not None:
            op = node.writes_by_data.get(e.data)
            if op is not None:
                if op.entry is not None:
                    node.writes_by_index.pop(op.entry.index, None)
                self._ack_write(node, op, e, applied)

    def _ack_write(self, node: SimNode, op: ClientOp, e: Entry, applied: Applied | None) -> None:
        node.writes_by_data.pop(e.data, None)
        op.index = e.index
        op.entry = e.id
        op.ret = self._tick_clock()
        outcome = ""
        if op.kind is OpKind.CAS or op.kind is OpKind.TXN:
            op.ok = applied is not None and applied.ok
            outcome = ": ok" if op.ok else ": failed"
        if op.kind is OpKind.TXN and op.reads:  # recorded where it first applied
            outcome += " read " + _pairs(op.reads)
        command = applied.command.describe() if applied is not None else f"{op.key}={op.value}"
        self._tx.emit(f"  {op.name} {command} acked at {e.term}/{e.index}{outcome}")

    def _newer_term_applied(self, node: SimNode, term: int) -> None:
        """``node`` applied an entry of ``term``: what it forwarded in an earlier term and has
        not applied will never apply."""
        fwd = node.forwarded
        while fwd and fwd[0][0] < term:
            op = fwd.popleft()[1]
            if not op.pending:
                continue
            if op.index is not None:
                raise InvariantViolation(
                    "a dropped write never applies",
                    f"{op.name} {op.data!r}, forwarded by node {node.id} in term {op.sent_term}, "
                    f"is not applied there after an entry of term {term}, but it applied at "
                    f"index {op.index} elsewhere",
                )
            op.error = DROPPED
            node.writes_by_data.pop(op.data, None)
            self.unplaced.pop(op.data, None)
            self.dropped[op.data] = op
            self._tx.emit(f"  {op.name} {DROPPED}")

    def _dropped_applies(self, node: SimNode, e: Entry) -> None:
        op = self.dropped[e.data]
        raise InvariantViolation(
            "a dropped write never applies",
            f"node {node.id} applies {op.name} {op.data!r} at {e.term}/{e.index}; node "
            f"{op.node} forwarded it in term {op.sent_term} and answered it dropped",
        )

    def fate(self, op: ClientOp) -> bool | None:
        """Whether a write certainly applied (True), certainly never will (False), or neither
        is known yet (None), from what the cluster committed: what a client learns by reading
        back, once a later entry of its log slot, or of a later term than it was forwarded
        in, is applied somewhere."""
        if op.error is not None:
            return False
        if op.ret is not None or op.index is not None:
            return True
        committed = self.committed
        if op.entry is not None:
            return False if committed.index >= op.entry.index else None
        if op.sent_term is not None:
            return False if committed.term > op.sent_term else None
        return None

    # -- reads -------------------------------------------------------------------------------------

    def read_states(self, node: SimNode, read_states: tuple[ReadState, ...]) -> None:
        self.read_states_seen += len(read_states)
        for rs in read_states:
            op = node.reads.pop(rs.context, None)
            if op is not None:
                op.index = rs.index
                node.reads_waiting.append(op)

    def complete_reads(self, node: SimNode) -> None:
        """Answer the reads whose index ``node`` has applied."""
        applied = node.sm.applied
        waiting = []
        for op in node.reads_waiting:
            assert op.index is not None
            if op.index <= applied:
                op.value = node.sm.get(op.key)
                op.ret = self._tick_clock()
                self._tx.emit(f"  {op.name} read {op.key}={op.value} at index {op.index}")
            else:
                waiting.append(op)
        node.reads_waiting = waiting

    # -- checks ------------------------------------------------------------------------------------

    def client_history(self, *, reads: bool = True) -> list[Op]:
        """The history for the linearizability checker: ops that certainly failed are left out
        (and the reads, unless ``reads``), and so are unanswered writes that changed nothing:
        those whose fate is now known to be "never", and compare-and-sets that applied and
        failed (either way, as if they never happened)."""
        out = []
        for op in self.ops or ():
            if op.kind is OpKind.READ:
                if reads and op.error is None:
                    out.append(op.to_op())
            elif op.ret is not None or (self.fate(op) is not False and op.took_effect is not False):
                out.append(op.to_op())
        return out

    def check(self, nodes: dict[int, SimNode], *, reads: bool = True) -> None:
        """Raise unless the history is linearizable and has no stale read, every watcher saw
        the committed history and the locks held (see ``check_locks``)."""
        history = self.client_history(reads=reads)
        check_linearizable(history)
        check_stale_reads(history)
        done = sum(1 for op in history if op.ret is not None)
        kept = {op.id for op in history}
        # Unanswered writes left out as known to have changed nothing (never failed outright).
        void = sum(
            1
            for op in self.ops or ()
            if op.kind is not OpKind.READ and op.error is None and op.id not in kept
        )
        without = f", {void} unanswered without effect" if void else ""
        self._tx.emit(f"{len(history)} operations ({done} answered{without}): linearizable")
        self.watchers.check(nodes)
        tenures = check_locks(self.ops or (), self.committed)
        if tenures:
            self._tx.emit(f"{tenures} lock tenures: exclusive, fenced, in token order")

    def show(self) -> None:
        for op in self.ops or ():
            ret = "?" if op.ret is None else str(op.ret)
            status = f" failed: {op.error}" if op.error else ""
            if op.kind is OpKind.READ:
                what = f"read {op.key}={op.value}"
            else:
                command = op.data.decode("utf-8", "replace")
                what = command if op.kind is OpKind.TXN else f"{op.kind.value} {command}"
                if op.ok is not None:
                    what += ": ok" if op.ok else ": failed"
                if op.ret is not None and op.reads:
                    what += " read " + _pairs(op.reads)
            self._tx.emit(f"{op.name} {what} at {op.node} [{op.invoke},{ret}]{status}")


def _pairs(pairs: Pairs) -> str:
    return " ".join(f"{k}={v or ''}" for k, v in pairs)
