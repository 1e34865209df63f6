"""``SimNode``: one simulated server, and ``Nodes``: all of them, started, crashed, restarted.

A node's ``MemoryLogStore`` is its disk: it survives crashes. Its ``RawNode`` and
``KVStateMachine`` are its memory: a crash throws both away, and with them whatever a Ready had
not made durable. A restart rebuilds both from the store, as the runtime does (``applied`` is
the snapshot's index; the committed entries after it are applied again through Readys).

Each node's ``random.Random`` is seeded from (seed, id, incarnation), so runs are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from raftkv.core import Config, MemoryLogStore, RawNode

from ._invariants import InvariantChecker
from ._statemachine import KVStateMachine

if TYPE_CHECKING:
    from ._clients import ClientOp

__all__ = ["Nodes", "SimNode"]


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

    def forget_client_ops(self) -> None:
        """The node went down: writes may still commit (outcome unknown); reads never answer."""
        self.writes_by_index.clear()
        self.writes_by_data.clear()
        self.reads.clear()
        self.reads_waiting.clear()


class Nodes:
    """Every simulated node by id (``by_id``, iterated in sorted ``order``) and its lifecycle."""

    def __init__(
        self,
        seed: int,
        node_config: Callable[[int], Config],
        invariants: InvariantChecker | None,
    ) -> None:
        self._seed = seed
        self._node_config = node_config
        self.invariants = invariants
        self.by_id: dict[int, SimNode] = {}
        self.order: list[int] = []
        # Every node's durable store, shared with the invariant checker (quorum checks).
        self.stores: dict[int, MemoryLogStore] = {}
        if invariants is not None:
            invariants.attach(self.stores)

    def add(self, node_id: int, store: MemoryLogStore) -> SimNode:
        node = SimNode(node_id, self._node_config(node_id), store)
        self.by_id[node_id] = node
        self.order = sorted(self.by_id)
        self.stores[node_id] = store
        self.start(node)
        return node

    def start(self, node: SimNode) -> None:
        """Build the node's memory from its store (the restart recipe)."""
        store = node.store
        snap = store.snapshot()
        rng = random.Random(f"{self._seed}/{node.id}/{node.incarnation}")
        node.raw = RawNode(node.config, store, rng, applied=snap.metadata.index)
        node.sm = KVStateMachine.restore(snap.data)
        if self.invariants is not None:
            self.invariants.on_start(node.id, store, node.raw)

    def crash(self, node: SimNode) -> None:
        """The RawNode and the state machine are lost; the store survives."""
        node.forget_client_ops()
        node.raw = None

    def restart(self, node: SimNode) -> None:
        node.incarnation += 1
        self.start(node)

    def replace_store(self, node: SimNode, store: MemoryLogStore) -> None:
        """A down node's disk is replaced wholesale (scenario setup)."""
        node.store = store
        self.stores[node.id] = store
        if self.invariants is not None:
            self.invariants.reset_node(node.id, store)

    def snapshot(self, node: SimNode, keep: int | None) -> None:
        """The runtime's recipe, between Readys: snapshot the state machine at the applied
        index with the configuration in force, then (unless ``keep`` is None) compact the log
        up to ``applied - keep``."""
        raw = node.raw
        assert raw is not None, "only a running node takes snapshots"
        store = node.store
        applied = raw.applied
        if applied > store.snapshot().metadata.index:
            snap = store.create_snapshot(applied, raw.conf_state, node.sm.snapshot())
            if self.invariants is not None:
                self.invariants.on_snapshot_created(node.id, snap, node.sm.digest)
        if keep is not None:
            store.compact(min(applied - keep, store.snapshot().metadata.index))

    def up_ids(self) -> list[int]:
        return [i for i in self.order if self.by_id[i].raw is not None]
