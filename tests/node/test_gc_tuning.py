"""The garbage collector's tuning (``raftkv._gc``): every collection's pause recorded, what
exists frozen and the thresholds raised once after start-up, nothing touched when disabled.

Each test leaves the process's collector as it found it (``collector`` fixture).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import trio

from raftkv import _gc
from raftkv._gc import THRESHOLDS, GcTuning, gc_pauses


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    thresholds = gc.get_threshold()
    monkeypatch.setattr(_gc, "_process", _gc._Process(pauses=_gc._process.pauses))
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_every_collection_is_recorded() -> None:
    stats = gc_pauses().stats
    before = stats.collections[2], stats.full_pauses.count
    gc.collect()
    assert stats.collections[2] == before[0] + 1
    assert stats.full_pauses.count == before[1] + 1
    assert stats.max_pause > 0


async def test_start_up_is_frozen_once_and_the_thresholds_raised(
    collector: None, autojump_clock: trio.testing.MockClock
) -> None:
    tuning = GcTuning(enabled=True)
    with trio.fail_after(_gc.SETTLE_SECONDS + 1):
        await tuning.started()
    assert gc.get_threshold() == THRESHOLDS
    assert tuning.stats.freezes >= 1 and gc.get_freeze_count() > 0
    freezes = tuning.stats.freezes
    with trio.fail_after(1):
        await GcTuning(enabled=True).started()  # another node of the process: already done
    assert tuning.stats.freezes == freezes


async def test_the_thresholds_are_raised_and_imports_frozen_at_once_not_after_settling(
    collector: None, mock_clock: trio.testing.MockClock
) -> None:
    """Before the first freeze a full collection walks everything start-up made (a new member
    caught up through its log set one off in its raft loop: 68 ms): the thresholds go up, and
    what exists is frozen, as soon as the node starts; what it builds next, once it settled."""
    gc.unfreeze()
    tuning = GcTuning(enabled=True)
    freezes = tuning.stats.freezes  # the process's count
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tuning.started)
        await trio.testing.wait_all_tasks_blocked()
        assert gc.get_threshold() == THRESHOLDS
        assert tuning.stats.freezes == freezes + 1 and gc.get_freeze_count() > 0
        mock_clock.jump(_gc.SETTLE_SECONDS)
    assert tuning.stats.freezes == freezes + 2


async def test_disabled_leaves_the_collector_alone(
    collector: None, autojump_clock: trio.testing.MockClock
) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    tuning = GcTuning(enabled=False)
    await tuning.started()
    tuning.state_replaced(1 << 30)
    tuning.state_grew(1 << 31)
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0


def test_a_large_restored_state_is_frozen(collector: None) -> None:
    tuning = GcTuning(enabled=True)
    freezes = tuning.stats.freezes
    tuning.state_replaced(_gc.LARGE_STATE_BYTES - 1)
    assert tuning.stats.freezes == freezes
    tuning.state_replaced(_gc.LARGE_STATE_BYTES)
    assert tuning.stats.freezes == freezes + 1


def test_a_state_grown_by_a_quarter_since_the_last_freeze_is_frozen(collector: None) -> None:
    """Snapshots taken of a growing store (a bulk load) freeze it each time it grew by a
    quarter: a geometric series of freezes, never one per snapshot."""
    tuning = GcTuning(enabled=True)
    freezes = tuning.stats.freezes
    size = _gc.LARGE_STATE_BYTES
    tuning.state_grew(size - 1)  # too small to matter
    assert tuning.stats.freezes == freezes
    for _ in range(40):  # snapshots of a store growing 5% each time: 1 MiB to 7 MiB
        tuning.state_grew(size)
        size = int(size * 1.05)
    assert tuning.stats.freezes - freezes == 8  # at 1 MiB, then every 1.25x (5 steps of 5%)
    tuning.state_replaced(100 * size)  # a restored snapshot: frozen, the new mark
    tuning.state_grew(99 * size)
    assert tuning.stats.freezes - freezes == 9


def test_no_collection_while_a_snapshot_is_restored(collector: None) -> None:
    tuning = GcTuning(enabled=True)
    freezes = tuning.stats.freezes
    with tuning.paused():
        assert not gc.isenabled()
        with tuning.paused():  # nested: the outer block still owns the collector
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    assert tuning.stats.freezes == freezes + 1  # what the block made: frozen, not young
    with pytest.raises(RuntimeError), tuning.paused():
        raise RuntimeError("a damaged snapshot")
    assert gc.isenabled()


def test_disabled_tuning_does_not_pause_the_collector(collector: None) -> None:
    with GcTuning(enabled=False).paused():
        assert gc.isenabled()
