"""``open_local_cluster``: a cluster of real nodes in one process, for tests and examples.

Every node is a ``raftkv.Node`` with its storage in memory, connected to the others by a
``MemoryNetwork`` (whose faults a test can inject): everything but the disk and the sockets is
the same code a deployed node runs.

    async with open_local_cluster(3, Counter) as nodes:
        await nodes[0].propose(b"+1")
        assert await nodes[2].read(lambda counter: counter.value) == 1
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from .._node import Node
from .._node_config import NodeConfig
from .._open import open_node
from .._statemachine import StateMachine
from ..storage import MemoryStorage
from ..transport import MemoryNetwork

__all__ = ["open_local_cluster"]


@asynccontextmanager
async def open_local_cluster(
    n: int,
    state_machine: Callable[[], StateMachine],
    *,
    network: MemoryNetwork | None = None,
    **config: Any,
) -> AsyncIterator[list[Node]]:
    """``n`` founding nodes (ids 1..n), each with ``state_machine()``; ``config`` goes to
    every ``NodeConfig`` (``tick_interval=0.01`` makes elections fast). Yields the nodes in id
    order; stops them all when the block exits."""
    net = network or MemoryNetwork()
    peers = {i: f"http://node-{i}:1" for i in range(1, n + 1)}
    async with AsyncExitStack() as stack:
        nodes = []
        for i in peers:
            others = [j for j in peers if j != i]
            transport = await stack.enter_async_context(net.open_transport(i, peers=others))
            node = await stack.enter_async_context(
                open_node(
                    NodeConfig(id=i, **config),
                    state_machine=state_machine(),
                    peers=peers,
                    storage=MemoryStorage(),
                    transport=transport,
                )
            )
            nodes.append(node)
        yield nodes
