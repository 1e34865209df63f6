"""``open_node``: start a ``Node`` from its storage (or found or join a cluster), and stop it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import trio

from ._errors import InvalidConfig, one_error_unwrapped
from ._logstore import RuntimeLogStore
from ._node import Node
from ._node_config import NodeConfig
from ._statemachine import StateMachine
from .core import bootstrap
from .storage import MemoryStorage, Storage, open_file_storage
from .transport import Transport, open_tcp_transport, parse_peer_url

__all__ = ["DEFAULT_CLUSTER_ID", "open_node"]

# The cluster's name in peer handshakes, unless given: give every cluster its own.
DEFAULT_CLUSTER_ID = "raftkv-cluster"


def _peer_contexts(peers: Mapping[int, str]) -> dict[int, bytes]:
    return {node: url.encode() for node, url in peers.items()}


@asynccontextmanager
async def open_node(
    config: NodeConfig,
    *,
    state_machine: StateMachine,
    peers: Mapping[int, str] | None = None,
    join: bool = False,
    storage: Storage | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    transport: Transport | None = None,
    cluster_id: str = DEFAULT_CLUSTER_ID,
) -> AsyncIterator[Node]:
    """Start a node; stop it when the block exits.

    A new node either founds the cluster with ``peers`` (id -> peer URL, the same on every
    founding member, including this node) or, with ``join=True``, starts empty and waits for the
    leader that added it to send it the log (or a snapshot). Existing data in its storage always
    wins: the node restarts from its newest snapshot and the log after it.

    - ``storage``: given, or a ``FileStorage`` in ``data_dir``, or — neither — in memory
      (nothing survives a restart: for tests and examples).
    - ``transport``: given, or TCP: listening on this node's own peer URL (``peers[config.id]``)
      and dialing the others at theirs; ``cluster_id`` names the cluster in every handshake.

        async with open_node(NodeConfig(id=1), state_machine=sm, data_dir="node-1",
                             peers={1: "http://127.0.0.1:12379"}) as node:
            result = await node.propose(b"command")
    """
    async with AsyncExitStack() as stack:
        if storage is None:
            storage = (
                await stack.enter_async_context(open_file_storage(data_dir))
                if data_dir is not None
                else MemoryStorage()
            )
        if transport is None:
            transport = await stack.enter_async_context(
                _tcp_from_urls(config.id, peers, cluster_id)
            )
        opened = _open_node(config, storage, transport, state_machine, peers=peers, join=join)
        async with opened as node:
            yield node


def _tcp_from_urls(
    node_id: int, peers: Mapping[int, str] | None, cluster_id: str
) -> AbstractAsyncContextManager[Transport]:
    if not peers or node_id not in peers:
        raise InvalidConfig(
            f"node {node_id} needs its own peer URL in peers to listen on (or a transport)"
        )
    host, port = parse_peer_url(peers[node_id])
    return open_tcp_transport(node_id, cluster_id, peers, listen_host=host, listen_port=port)


@asynccontextmanager
async def _open_node(
    config: NodeConfig,
    storage: Storage,
    transport: Transport,
    state_machine: StateMachine,
    *,
    peers: Mapping[int, str] | None,
    join: bool,
) -> AsyncIterator[Node]:
    state = await storage.load()
    if not state.is_empty:
        store = RuntimeLogStore.restore(state.hard_state, state.snapshot, state.entries)
    elif join:
        store = RuntimeLogStore()
    else:
        if not peers or config.id not in peers:
            raise InvalidConfig(f"node {config.id} must be one of the founding peers")
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
