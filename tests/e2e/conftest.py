from collections.abc import Iterator
from pathlib import Path

import pytest

from ._procs import RAFTKVD, Cluster


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator:
    if not Path(RAFTKVD).exists():
        pytest.fail(
            f"the raftkvd console script is not installed next to the interpreter: {RAFTKVD}"
        )
    made: list[Cluster] = []

    def make(n: int) -> Cluster:
        c = Cluster(tmp_path, n)
        made.append(c)
        return c

    yield make
    for c in made:
        c.teardown()
