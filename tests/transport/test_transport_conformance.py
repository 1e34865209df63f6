"""The promises of the ``Transport`` protocol, checked on every implementation.

Each test runs once per transport (the ``harness`` fixture): the memory network and TCP over
loopback. See ``raftkv/transport/_base.py`` for the promises.
"""

from __future__ import annotations

import random

import pytest
import trio
from transport_helpers import Harness, commits, hb

from raftkv.core import ConfState, InstallSnapshot, Snapshot, SnapshotMetadata
from raftkv.transport import (
    Inbound,
    Refusal,
    Removed,
    SnapshotStatus,
    Transport,
    Unreachable,
)


def snapshot_message(src: int, dst: int, size: int, seed: int = 0) -> InstallSnapshot:
    data = random.Random(seed).randbytes(size)
    meta = SnapshotMetadata(index=120, term=3, conf_state=ConfState((1, 2, 3)))
    return InstallSnapshot(term=3, src=src, dst=dst, snapshot=Snapshot(meta, data))


async def test_implements_the_protocol(harness: Harness) -> None:
    node = await harness.start(1)
    assert isinstance(node.transport, Transport)
    assert node.transport.statistics().messages_sent == 0


async def test_delivers_between_three_nodes(harness: Harness) -> None:
    nodes = await harness.cluster(1, 2, 3)
    for a in nodes:
        a.send([hb(a.id, b.id, n=10 * a.id + b.id) for b in nodes if b is not a])
    for b in nodes:
        got = await b.recorder.wait_messages(2)
        assert sorted(commits(got)) == sorted(10 * a.id + b.id for a in nodes if a is not b)
        assert all(m.dst == b.id for m in got)
    for node in nodes:
        stats = node.transport.statistics()
        assert (stats.messages_sent, stats.messages_received) == (2, 2)
        assert stats.refused_total == 0


async def test_batches_keep_order_per_peer(harness: Harness) -> None:
    n1, n2, n3 = await harness.cluster(1, 2, 3)
    count = 300
    # One large batch interleaving two destinations, then a few more small batches.
    n1.send([hb(1, dst, n=i) for i in range(count) for dst in (2, 3)])
    for i in range(count, count + 30, 10):
        n1.send([hb(1, 2, n=j) for j in range(i, i + 10)])
    got2 = await n2.recorder.wait_messages(count + 30)
    got3 = await n3.recorder.wait_messages(count)
    assert commits(got2) == list(range(count + 30))
    assert commits(got3) == list(range(count))


async def test_unknown_destination_is_unreachable(harness: Harness) -> None:
    (n1,) = [await harness.start(1)]
    n1.send([hb(1, 9)])
    await n1.recorder.wait_event(Unreachable(9))
    assert n1.transport.statistics().messages_dropped == 1


async def test_stopped_peer_is_unreachable(harness: Harness) -> None:
    n1, _, n3 = await harness.cluster(1, 2, 3)
    await n3.stop()
    n1.send([hb(1, 3)])
    await n1.recorder.wait_event(Unreachable(3))


async def test_send_refuses_a_foreign_source(harness: Harness) -> None:
    n1, _ = await harness.cluster(1, 2)
    with pytest.raises(ValueError, match="cannot send"):
        n1.send([hb(2, 1)])


async def test_unknown_sender_is_refused(harness: Harness) -> None:
    n1 = await harness.start(1)
    n2 = await harness.start(2)
    n1.transport.add_peer(2, n2.url)  # 2 does not know 1
    n1.send([hb(1, 2)])
    await n1.recorder.wait_event(Unreachable(2))
    assert n2.transport.statistics().refused == {Refusal.UNKNOWN_SENDER: 1}
    assert n2.recorder.messages() == []


async def test_removed_member_is_refused_and_told(harness: Harness) -> None:
    n1, n2, n3 = await harness.cluster(1, 2, 3)
    n2.send([hb(2, 1, n=1)])  # an established path, then removal
    await n1.recorder.wait_messages(1, src=2)

    n1.transport.remove_peer(2)
    n2.send([hb(2, 1, n=2)])
    await n2.recorder.wait_event(Removed(by=1))
    n3.send([hb(3, 1, n=3)])
    await n1.recorder.wait_messages(1, src=3)
    assert commits(n1.recorder.messages(src=2)) == [1]

    # Told once, however many times the removed node still tries.
    n2.send([hb(2, 1, n=4)])
    n2.send([hb(2, 3, n=5)])
    await n3.recorder.wait_messages(1, src=2)
    assert n2.recorder.events.count(Removed(by=1)) == 1
    assert commits(n1.recorder.messages(src=2)) == [1]


async def test_add_peer_readmits_a_removed_member(harness: Harness) -> None:
    n1, n2 = await harness.cluster(1, 2)
    n1.transport.remove_peer(2)
    n2.send([hb(2, 1)])
    await n2.recorder.wait_event(Removed(by=1))
    n1.transport.add_peer(2, n2.url)
    with trio.fail_after(5):
        while not n1.recorder.messages(src=2):
            n2.send([hb(2, 1, n=7)])
            with trio.move_on_after(0.1):
                await n1.recorder.wait_messages(1, src=2)


@pytest.mark.parametrize("size", [0, 1, 3 * 2**20 + 17])
async def test_snapshot_round_trip(harness: Harness, size: int) -> None:
    n1, n2 = await harness.cluster(1, 2)
    snap = snapshot_message(1, 2, size)
    # Messages sent with and after a snapshot are not held back by it.
    n1.send([hb(1, 2, n=0), snap, *[hb(1, 2, n=i) for i in range(1, 20)]])
    await n1.recorder.wait_event(SnapshotStatus(2, True), timeout=10)
    got = await n2.recorder.wait_messages(21)
    assert [m for m in got if isinstance(m, InstallSnapshot)] == [snap]
    assert commits([m for m in got if not isinstance(m, InstallSnapshot)]) == list(range(20))
    assert n1.transport.statistics().snapshots_sent == 1
    assert n2.transport.statistics().snapshots_received == 1


async def test_snapshot_to_a_stopped_peer_fails(harness: Harness) -> None:
    n1, n2 = await harness.cluster(1, 2)
    await n2.stop()
    n1.send([snapshot_message(1, 2, 1000)])
    await n1.recorder.wait_event(SnapshotStatus(2, False))
    assert n1.transport.statistics().snapshots_failed == 1


async def test_restarted_peer_is_reached_again(harness: Harness) -> None:
    n1, n2 = await harness.cluster(1, 2)
    n1.send([hb(1, 2, n=1)])
    await n2.recorder.wait_messages(1)
    port = n2.transport.listen_port if harness.kind == "tcp" else 0
    await n2.stop()
    n2 = await harness.start(2, port=port)
    n2.transport.add_peer(1, n1.url)
    # The first messages may die with the old connection; keep sending until one lands.
    with trio.fail_after(5):
        for i in range(2, 1000):
            n1.send([hb(1, 2, n=i)])
            with trio.move_on_after(0.05):
                await n2.recorder.wait_messages(1)
                break
    assert isinstance(n2.recorder.events[0], Inbound)


async def test_events_end_when_the_transport_closes(harness: Harness) -> None:
    n1 = await harness.start(1)
    channel = n1.transport.events.clone()
    await n1.stop()
    with trio.fail_after(5), pytest.raises(trio.EndOfChannel):
        await channel.receive()
