from collections.abc import Iterator

import pytest
from fake_cluster import ENDPOINTS, NO_WAIT, FakeCluster

from raftkv.client import Client


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def client(cluster: FakeCluster) -> Iterator[Client]:
    with Client(list(ENDPOINTS), retry=NO_WAIT, transport=cluster.mock_transport()) as c:
        yield c
