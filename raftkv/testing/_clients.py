"""``ClientHistory``: the simulator's client operations, for the linearizability checker.

Writes ``key=value`` and ReadIndex reads are recorded with invocation and return times on one
logical clock. A write returns when the node it was proposed on applies it; a read returns when
the node that asked for it has its ``ReadState`` and has applied up to its index (the value is
then read from its state machine). A write that never returns is a "maybe" operation; a write
whose log slot was taken by another entry certainly failed and leaves the history (Log
Matching: it can never commit). Operations waiting on a node that crashes never return.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.core import Entry, EntryId, EntryType, ProposalDropped, ReadState

from ._lincheck import Op, OpKind, check_linearizable, check_stale_reads
from ._simnode import SimNode
from ._statemachine import parse_put
from ._transcript import Transcript

__all__ = ["ClientHistory", "ClientOp"]


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


class ClientHistory:
    """Client operations by invocation; ``ops`` is None when the history is not kept."""

    def __init__(self, transcript: Transcript, *, enabled: bool) -> None:
        self._tx = transcript
        self.ops: list[ClientOp] | None = [] if enabled else None
        # Writes not yet seen applied anywhere, by command bytes (to learn their log index).
        self.unplaced: dict[bytes, ClientOp] = {}
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

    # -- invocations -------------------------------------------------------------------------------

    def propose(self, node: SimNode, data: bytes) -> ClientOp | None:
        """Propose ``data`` at ``node``; a ``key=value`` write is recorded in the history."""
        put = parse_put(data) if self.ops is not None else None
        op = self._new_op(OpKind.WRITE, node.id, *put) if put is not None else None
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

    # -- completions -------------------------------------------------------------------------------

    def placed(self, e: Entry) -> None:
        """``e`` (a write) was applied somewhere: the write of that command sits at its index."""
        op = self.unplaced.pop(e.data, None)
        if op is not None:
            op.index = e.index

    def complete_write(self, node: SimNode, e: Entry) -> None:
        """``node`` applied ``e``: answer the write waiting for it, or fail the one it replaced."""
        op = node.writes_by_index.pop(e.index, None)
        if op is not None:
            if op.entry == e.id:
                self._ack_write(node, op, e)
                return
            # Another entry took our slot: ours can never commit (Log Matching).
            op.error = f"overwritten by {e.term}/{e.index}"
            node.writes_by_data.pop(e.data, None)
            self._tx.emit(f"  {op.name} lost: {op.error}")
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
        self._tx.emit(f"  {op.name} {op.key}={op.value} acked at {e.term}/{e.index}")

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

    def client_history(self) -> list[Op]:
        """The history for the linearizability checker: ops that certainly failed are left out."""
        return [op.to_op() for op in self.ops or () if op.error is None]

    def check(self) -> None:
        """Raise unless the history is linearizable and has no stale read."""
        history = self.client_history()
        check_linearizable(history)
        check_stale_reads(history)
        done = sum(1 for op in history if op.ret is not None)
        self._tx.emit(f"{len(history)} operations ({done} answered): linearizable")

    def show(self) -> None:
        for op in self.ops or ():
            ret = "?" if op.ret is None else str(op.ret)
            what = "write" if op.kind is OpKind.WRITE else "read"
            status = f" failed: {op.error}" if op.error else ""
            self._tx.emit(
                f"{op.name} {what} {op.key}={op.value} at {op.node} [{op.invoke},{ret}]{status}"
            )
