"""Fault injection on the memory network: drop, cuts, partitions, heal, delay, overflow."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.testing
from transport_helpers import Recorder, commits, hb

from raftkv.core import InstallSnapshot, Snapshot
from raftkv.transport import (
    MemoryNetwork,
    MemoryTransport,
    SnapshotStatus,
    Unreachable,
)


class Net:
    """A memory network with recorders, opened for the duration of a test."""

    def __init__(self, nursery: trio.Nursery, **kw: Any) -> None:
        self.network = MemoryNetwork(**kw)
        self.nursery = nursery
        self.t: dict[int, MemoryTransport] = {}
        self.rec: dict[int, Recorder] = {}

    async def open(self, *ids: int, record: bool = True) -> None:
        for i in ids:
            await self.nursery.start(self._run, i, record)

    async def _run(self, node_id: int, record: bool, task_status: trio.TaskStatus[None]) -> None:
        peers = [p for p in range(1, 6) if p != node_id]
        async with self.network.open_transport(node_id, peers) as t:
            self.t[node_id] = t
            self.rec[node_id] = Recorder()
            if record:
                self.nursery.start_soon(self.rec[node_id].run, t.events)
            task_status.started()
            await trio.sleep_forever()


@pytest.fixture
async def net(nursery: trio.Nursery) -> Net:
    n = Net(nursery, rng=random.Random(42))
    await n.open(1, 2, 3)
    return n


async def send_marker_and_wait(net: Net, src: int, dst: int, n: int) -> list[int]:
    """Send a numbered marker and wait for it; links are FIFO, so anything sent before it that
    was not lost has arrived too. Returns what ``dst`` got from ``src``."""
    net.t[src].send([hb(src, dst, n=n)])
    await net.rec[dst].wait_for(lambda e: getattr(e, "message", None) == hb(src, dst, n=n))
    return commits(net.rec[dst].messages(src))


async def test_drop_rate_is_seeded_and_reproducible(nursery: trio.Nursery) -> None:
    outcomes = []
    for _ in range(2):
        async with trio.open_nursery() as inner:
            net = Net(inner, rng=random.Random(7))
            await net.open(1, 2)
            net.network.set_drop_rate(0.5)
            net.t[1].send([hb(1, 2, n=i) for i in range(400)])
            net.network.set_drop_rate(0)
            got = await send_marker_and_wait(net, 1, 2, n=1000)
            stats = net.network.statistics()
            assert stats.dropped + stats.delivered == 401
            assert 120 < stats.dropped < 280
            outcomes.append(got)
            inner.cancel_scope.cancel()
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] == sorted(outcomes[0])  # losses never reorder


async def test_dropped_snapshot_fails(net: Net) -> None:
    net.network.set_drop_rate(1.0)
    net.t[1].send([InstallSnapshot(1, 1, 2, Snapshot(data=b"x"))])
    await net.rec[1].wait_event(SnapshotStatus(2, False))


async def test_one_way_cut(net: Net) -> None:
    net.network.cut(1, 2)
    assert net.network.is_cut(1, 2) and not net.network.is_cut(2, 1)
    net.t[1].send([hb(1, 2, n=1)])
    assert await send_marker_and_wait(net, 2, 1, n=2) == [2]  # the other way works
    net.network.heal(1, 2)
    assert await send_marker_and_wait(net, 1, 2, n=3) == [3]  # n=1 was lost
    assert net.network.statistics().cut == 1


async def test_partition_and_heal(net: Net) -> None:
    net.network.partition({1}, {2, 3})
    net.t[1].send([hb(1, 2, n=1), hb(1, 3, n=1)])
    net.t[2].send([hb(2, 1, n=1)])
    assert await send_marker_and_wait(net, 2, 3, n=2) == [2]  # inside the majority side
    net.network.heal()
    assert await send_marker_and_wait(net, 1, 2, n=3) == [3]
    assert await send_marker_and_wait(net, 1, 3, n=3) == [3]
    assert await send_marker_and_wait(net, 2, 1, n=3) == [3]
    assert net.network.statistics().cut == 3


async def test_delay_uses_trio_time(net: Net, autojump_clock: trio.testing.MockClock) -> None:
    net.network.set_delay(0.5)
    start = trio.current_time()
    net.t[1].send([hb(1, 2, n=1)])
    await net.rec[2].wait_messages(1)
    assert trio.current_time() - start == pytest.approx(0.5)


async def test_random_delay_keeps_link_order(
    net: Net, autojump_clock: trio.testing.MockClock
) -> None:
    net.network.set_delay(0.1, 2.0)
    start = trio.current_time()
    for i in range(50):
        net.t[1].send([hb(1, 2, n=i)])
    got = await net.rec[2].wait_messages(50, timeout=10)
    assert commits(got) == list(range(50))
    assert 0.1 <= trio.current_time() - start <= 2.0


async def test_cut_loses_messages_in_flight(
    net: Net, autojump_clock: trio.testing.MockClock
) -> None:
    net.network.set_delay(1.0)
    net.t[1].send([hb(1, 2, n=1), InstallSnapshot(1, 1, 2, Snapshot(data=b"s"))])
    net.network.cut(1, 2)
    await net.rec[1].wait_event(SnapshotStatus(2, False))
    net.network.heal()
    net.network.set_delay(0)
    assert await send_marker_and_wait(net, 1, 2, n=2) == [2]


async def test_full_queue_drops_and_reports(nursery: trio.Nursery) -> None:
    net = Net(nursery, queue_size=4, events_buffer=1)
    await net.open(1)
    await net.open(2, record=False)  # nobody reads node 2's events
    for i in range(20):  # send() never blocks, however full the receiver is
        net.t[1].send([hb(1, 2, n=i)])
    await net.rec[1].wait_event(Unreachable(2))
    assert net.t[1].statistics().messages_dropped > 0


async def test_closed_node_is_unreachable_and_can_reopen(nursery: trio.Nursery) -> None:
    network = MemoryNetwork()
    rec = Recorder()
    async with network.open_transport(1, [2]) as t1:
        nursery.start_soon(rec.run, t1.events)
        async with network.open_transport(2, [1]):
            assert network.nodes == (1, 2)
            with pytest.raises(ValueError, match="already attached"):
                async with network.open_transport(2):
                    pass  # pragma: no cover
        t1.send([hb(1, 2)])
        await rec.wait_event(Unreachable(2))
        async with network.open_transport(2, [1]) as t2:
            t1.send([hb(1, 2, n=5)])
            with trio.fail_after(5):
                event = await t2.events.receive()
            assert getattr(event, "message", None) == hb(1, 2, n=5)


async def test_closing_fails_queued_snapshots(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    net = Net(nursery)
    await net.open(1)
    net.network.set_delay(1.0)
    async with net.network.open_transport(2, [1]):
        net.t[1].send([InstallSnapshot(1, 1, 2, Snapshot(data=b"s"))])
    await net.rec[1].wait_event(SnapshotStatus(2, False))


@pytest.mark.parametrize(
    ("call", "args"),
    [("set_drop_rate", (1.5,)), ("set_delay", (-1,)), ("set_delay", (2, 1)), ("heal", (1,))],
)
def test_bad_fault_settings(call: str, args: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        getattr(MemoryNetwork(), call)(*args)
