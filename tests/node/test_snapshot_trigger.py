"""When a snapshot is taken: once the log since the last one weighs ``snapshot_log_ratio`` times
that snapshot (not before ``snapshot_count`` entries), or ``snapshot_max_log_bytes`` at most.

Single key-value nodes on the memory network, with the autojump clock. The store's snapshot
grows with its keys, so writing new keys makes each snapshot later than the one before (the
log must outweigh a bigger state), where a fixed entry count would snapshot the whole time.
"""

from __future__ import annotations

import pytest
import trio

import raftkv
from raftkv.kv import CompactCommand, KVStateMachine, encode_command, encode_put
from raftkv.storage import MemoryStorage
from raftkv.transport import MemoryNetwork

VALUE = b"v" * 1000


async def _write(
    config: raftkv.NodeConfig, keys: list[bytes], *, compact: bool = False
) -> raftkv.Node:
    """A node that took every put of ``keys`` (in order; with ``compact``, each followed by a
    compaction of the history before it), then stopped; its statistics live on."""
    async with (
        MemoryNetwork().open_transport(1) as t,
        raftkv.open_node(
            config,
            storage=MemoryStorage(),
            transport=t,
            state_machine=KVStateMachine(),
            peers={1: "http://node1:1"},
        ) as node,
    ):
        with trio.fail_after(60):
            await node.wait_leader()
            for revision, key in enumerate(keys, start=1):
                await node.propose(encode_put(key, VALUE))
                if compact:
                    await node.propose(encode_command(CompactCommand(revision)))
            await node.wait_status(lambda _: not node._snapshotter._building)
        return node


async def test_a_growing_state_is_snapshotted_less_often(autojump_clock) -> None:
    """New keys: each snapshot is about as large as the log before it, so with a ratio of 1 the
    snapshots come at about 10, 20, 40, 80... entries, not every 10."""
    config = raftkv.NodeConfig(id=1, seed=1, snapshot_count=10, snapshot_log_ratio=1.0)
    node = await _write(config, [b"key-%04d" % i for i in range(160)])
    taken = node.statistics().snapshots_taken
    assert 3 <= taken <= 6, taken  # a count of 10 alone would have made 16


async def test_a_small_state_is_snapshotted_every_count(autojump_clock) -> None:
    """The same key over and over, its history compacted each time: the state stays one
    version of one key, which every 10 entries outweigh."""
    config = raftkv.NodeConfig(id=1, seed=1, snapshot_count=10, snapshot_log_ratio=1.0)
    node = await _write(config, [b"the-key"] * 50, compact=True)
    assert node.statistics().snapshots_taken >= 8  # 100 entries


async def test_the_log_is_bounded_whatever_the_ratio(autojump_clock) -> None:
    """A ratio that never triggers and a count far away: the log's weight still caps it."""
    config = raftkv.NodeConfig(
        id=1,
        seed=1,
        snapshot_count=1_000_000,
        snapshot_log_ratio=1000.0,
        snapshot_max_log_bytes=20_000,
    )
    node = await _write(config, [b"key-%04d" % i for i in range(100)])
    assert node.statistics().snapshots_taken >= 4  # about every 18 entries of 1 KB


@pytest.mark.parametrize("bad", [{"snapshot_log_ratio": -1.0}, {"snapshot_max_log_bytes": 0}])
def test_the_trigger_is_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="snapshot"):
        raftkv.NodeConfig(id=1, **bad)  # type: ignore[arg-type]
