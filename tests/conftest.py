"""Shared test setup: Hypothesis profiles, and a key-value service on one in-process node.

``ci`` (default): derandomized, so CI runs are reproducible. ``thorough``: many more examples,
for ``nox -s simulate``. Select with HYPOTHESIS_PROFILE.
"""

import os
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, settings

import raftkv
from raftkv.kv import KVService, KVStateMachine, Limits
from raftkv.storage import MemoryStorage
from raftkv.transport import MemoryNetwork

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite",
        action="store_true",
        default=False,
        help="rewrite tests/testdata/*.txt scenario files with the actual output",
    )


@pytest.fixture
async def kv_service() -> AsyncIterator[KVService]:
    """The key-value store on one node (memory storage and network), its first entries applied."""
    net = MemoryNetwork()
    async with (
        net.open_transport(1) as transport,
        raftkv.open_node(
            raftkv.NodeConfig(id=1, tick_interval=0.01),
            storage=MemoryStorage(),
            transport=transport,
            state_machine=(store := KVStateMachine()),
            peers={1: "http://127.0.0.1:1"},
        ) as node,
    ):
        await node.wait_status(lambda s: s.leader == 1 and s.applied == s.last_index)
        yield KVService(node, store, Limits())
