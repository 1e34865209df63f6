"""``handle_ready``: one Ready handled by the contract, for the simulator and the rule tests alike.

The contract (``raftkv.core._rawnode``): persist the snapshot, the entries, the hard state; send
``persisted_messages``; apply; ``advance``. ``messages`` promise nothing and may leave at any
point. Two orders are offered:

* the contract order (``early_send=False``): persist, then send ``messages`` and
  ``persisted_messages``, apply, advance;
* the runtime's order (``early_send=True``), as ``raftkv.Node`` does it: send ``messages``
  first, so that the followers' disk writes overlap the leader's (thesis §10.2.1), then persist,
  send ``persisted_messages``, apply, advance.

``crash_midway`` stops after the first half (the runtime's order: ``messages`` sent, nothing
persisted; the contract order: persisted, nothing sent), so that a crash at that point, the one
place where the two orders differ, can be explored: a follower may then hold entries its leader
lost. The caller throws the node away; the Ready is never advanced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from raftkv.core import MemoryLogStore, Message, RawNode, Ready, describe

from ._clients import ClientHistory
from ._network import Network
from ._simnode import Nodes, SimNode
from ._statemachine import KVStateMachine

__all__ = ["ReadyObserver", "SimDriver", "handle_ready", "persist"]


class ReadyObserver(Protocol):
    """Hooks into the handling of a Ready (``InvariantChecker`` is one)."""

    def before_persist(
        self, node_id: int, store: MemoryLogStore, raw: RawNode, rd: Ready
    ) -> None: ...

    def after_persist(
        self, node_id: int, store: MemoryLogStore, raw: RawNode, rd: Ready
    ) -> None: ...

    def on_send(self, node_id: int, store: MemoryLogStore, msg: Message) -> None: ...

    def after_advance(self, node_id: int, raw: RawNode) -> None: ...


def persist(store: MemoryLogStore, rd: Ready) -> None:
    """Make ``rd`` durable in ``store``: snapshot, entries, hard state, in that order."""
    if rd.snapshot is not None:
        store.apply_snapshot(rd.snapshot)
    if rd.entries:
        store.append(rd.entries)
    if rd.hard_state is not None:
        store.set_hard_state(rd.hard_state)


def handle_ready(
    raw: RawNode,
    store: MemoryLogStore,
    rd: Ready,
    *,
    send: Callable[[Sequence[Message]], None],
    apply: Callable[[Ready], None],
    early_send: bool = False,
    crash_midway: bool = False,
    observer: ReadyObserver | None = None,
) -> bool:
    """Handle ``rd`` (just taken from ``raw.ready()``); see the module docstring for the order.
    ``send`` gets each batch of messages; ``apply`` gets the Ready once it is durable. Returns
    False if it stopped midway (``crash_midway``), True once ``rd`` is advanced."""
    node_id = raw.id

    def out(messages: tuple[Message, ...]) -> None:
        if messages:
            if observer is not None:
                for m in messages:
                    observer.on_send(node_id, store, m)
            send(messages)

    if early_send:
        out(rd.messages)
        if crash_midway:
            return False
    if observer is not None:
        observer.before_persist(node_id, store, raw, rd)
    persist(store, rd)
    if observer is not None:
        observer.after_persist(node_id, store, raw, rd)
    if crash_midway:
        return False
    if not early_send:
        out(rd.messages)
    out(rd.persisted_messages)
    apply(rd)
    raw.advance(rd)
    if observer is not None:
        observer.after_advance(node_id, raw)
    return True


class SimDriver:
    """Handles the Readys of the simulator's nodes: each Ready is written to the transcript,
    handled by ``handle_ready`` (with the invariant checker watching), its committed entries
    applied to the node's state machine and its client operations answered. A node that applied
    its own removal is stopped once it has nothing more to send.

    ``early_send`` is the order used unless a call says otherwise (see the module docstring).
    """

    def __init__(self, nodes: Nodes, network: Network, clients: ClientHistory, *, early_send: bool):
        self._nodes, self._network, self._clients = nodes, network, clients
        self._invariants = nodes.invariants
        self._tx = network.transcript
        self.early_send = early_send

    def process(self, node: SimNode, *, early: bool | None = None, crash: bool = False) -> bool:
        """Handle one Ready of ``node`` if it has one (``crash``: crash it midway). Returns
        whether a Ready was handled."""
        raw = node.raw
        if raw is None or not raw.has_ready():
            return False
        rd = raw.ready()
        out = self._tx.out
        if out is not None:
            out.append(f"> {node.id} handling Ready")
            out.extend("  " + line for line in describe(rd).split("\n"))
        early_send = self.early_send if early is None else early
        done = handle_ready(
            raw,
            node.store,
            rd,
            send=self._network.send,
            apply=lambda rd: self._apply(node, rd),
            early_send=early_send,
            crash_midway=crash,
            observer=self._invariants,
        )
        if not done:
            self._nodes.crash(node)
            self._tx.emit(f"  {node.id} crashed before {'persisting' if early_send else 'sending'}")
        elif raw.removed and not raw.has_ready():
            self._tx.emit(f"  {node.id} was removed from the cluster: stopped")
            node.forget_client_ops()
            node.raw = None
            node.removed = True
        return True

    def _apply(self, node: SimNode, rd: Ready) -> None:
        inv = self._invariants
        if rd.snapshot is not None:
            node.sm = KVStateMachine.restore(rd.snapshot.data)
            if inv is not None:
                inv.on_restore(node.id, rd.snapshot, node.sm.digest)
            self._tx.emit(f"  {node.id} restored its state machine from the snapshot")
        sm = node.sm
        clients = self._clients
        track = clients.ops is not None and (node.writes_by_index or node.writes_by_data)
        for e in rd.committed_entries:
            put = sm.apply(e)
            if inv is not None:
                inv.on_apply(node.id, e, sm.digest)
            if put is not None and clients.unplaced:
                clients.placed(e)
            if track:
                clients.complete_write(node, e)
        if rd.read_states:
            clients.read_states(node, rd.read_states)
        if node.reads_waiting:
            clients.complete_reads(node)
