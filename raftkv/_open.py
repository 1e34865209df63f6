"""``open_node``: start a ``Node`` from its storage (or found or join a cluster), and stop it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

from ._errors import one_error_unwrapped
from ._logstore import RuntimeLogStore
from ._node import Node
from ._node_config import NodeConfig
from ._statemachine import StateMachine
from .core import bootstrap
from .storage import Storage
from .transport import Transport

__all__ = ["open_node"]


def _peer_contexts(peers: Mapping[int, str]) -> dict[int, bytes]:
    return {node: url.encode() for node, url in peers.items()}


@asynccontextmanager
async def open_node(
    config: NodeConfig,
    *,
    storage: Storage,
    transport: Transport,
    state_machine: StateMachine,
    peers: Mapping[int, str] | None = None,
    join: bool = False,
) -> AsyncIterator[Node]:
    """Start a node; stop it when the block exits.

    Existing data in ``storage`` always wins: the node restarts from its newest snapshot and the
    log after it. Otherwise a node either founds the cluster with ``peers`` (id -> peer URL, the
    same on every founding member, including this node) or, with ``join=True``, starts empty and
    waits for the leader that added it to send it the log (or a snapshot).

        async with open_node(NodeConfig(id=1), storage=s, transport=t, state_machine=sm,
                             peers={1: "http://127.0.0.1:12379"}) as node:
            result = await node.propose(b"command")
    """
    state = await storage.load()
    if not state.is_empty:
        store = RuntimeLogStore.restore(state.hard_state, state.snapshot, state.entries)
    elif join:
        store = RuntimeLogStore()
    else:
        if not peers or config.id not in peers:
            raise ValueError(f"node {config.id} must be one of the founding peers")
        store = RuntimeLogStore()
        hard_state, entries = bootstrap(store, _peer_contexts(peers))
        await storage.save(hard_state=hard_state, entries=entries, snapshot=None, sync=True)
    node = Node(
        config,
        storage=storage,
        transport=transport,
        state_machine=state_machine,
        log_store=store,
    )
    try:
        with one_error_unwrapped():
            async with trio.open_nursery() as nursery:
                await nursery.start(node._run)
                try:
                    yield node
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        node._shutdown("the node is shut down")
