"""Installing a snapshot from the leader: read into a new state beside the raft loop, then
swapped in; a damaged one dropped (the node keeps running), appends held back meanwhile.

Key-value nodes on the memory network (the autojump clock); the installer alone where a test
needs to feed it by hand.
"""

from __future__ import annotations

import gc
import logging

import pytest
import trio
import trio.testing

from raftkv._envelope import MemberTables, encode_snapshot_head
from raftkv._gc import GcTuning
from raftkv._inbox import InboxItem, SnapshotPrepared
from raftkv._installer import SnapshotInstaller
from raftkv._node_config import NodeStatistics
from raftkv.core import (
    AppendEntries,
    ConfState,
    Heartbeat,
    InstallSnapshot,
    Snapshot,
    SnapshotMetadata,
)
from raftkv.kv import KVStateMachine, encode_put
from raftkv.transport import Inbound

from . import harness
from .harness import Member


class KVTestCluster(harness.TestCluster):
    """The harness's cluster with key-value stores for state machines."""

    async def start(self, node_id: int, *, join: bool = False) -> Member:
        m = self.members.setdefault(node_id, Member(node_id))
        if not isinstance(m.sm, KVStateMachine):
            m.sm = KVStateMachine()  # type: ignore[assignment]
        return await super().start(node_id, join=join)


async def test_a_lagging_follower_installs_a_snapshot_read_beside_its_loop(
    autojump_clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "TestCluster", KVTestCluster)  # open_cluster makes ours
    async with harness.open_cluster(3, snapshot_count=20, catch_up_entries=5) as c:
        with trio.fail_after(30):
            leader = await c.wait_leader()
            lagger = next(i for i in (1, 2, 3) if i != leader)
            await c.crash(lagger)
            for k in range(300):
                await c.members[leader].n.propose(encode_put(b"k%03d" % (k % 120), b"%d" % k))
            await c.restart(lagger)
            target = c.members[leader].n.status().applied
            await c.wait_until(lambda: c.members[lagger].n.status().applied >= target)
        stats = c.members[lagger].n.statistics()
        assert stats.snapshots_restored >= 1
        assert stats.snapshot_prepare_seconds > 0  # the installer read it, beside the loop
        ours, theirs = c.members[lagger].sm, c.members[leader].sm
        assert isinstance(ours, KVStateMachine) and isinstance(theirs, KVStateMachine)
        assert ours.range().kvs == theirs.range().kvs
        assert ours.revision == theirs.revision


def _message(data: bytes, *, index: int = 50, src: int = 2) -> Inbound:
    meta = SnapshotMetadata(index, 3, ConfState((1, 2, 3)))
    return Inbound(InstallSnapshot(term=3, src=src, dst=1, snapshot=Snapshot(meta, data)))


def _good_snapshot() -> bytes:
    kv = KVStateMachine()
    for i in range(1, 2001):
        kv.apply(i, encode_put(b"key-%05d" % i, b"v"))
    return encode_snapshot_head(MemberTables({}, {})) + kv.snapshot()


async def _installer(
    nursery: trio.Nursery,
) -> tuple[SnapshotInstaller, KVStateMachine, list[InboxItem], list[InboxItem]]:
    sm = KVStateMachine()
    installer = SnapshotInstaller(1, sm, NodeStatistics())
    handed: list[InboxItem] = []  # what reached the core
    submitted: list[InboxItem] = []  # what the installer put back in the inbox

    async def submit(item: InboxItem) -> None:
        submitted.append(item)

    installer.start(nursery, submit)
    return installer, sm, handed, submitted


async def test_the_senders_appends_wait_while_its_snapshot_is_read() -> None:
    async with trio.open_nursery() as nursery:
        installer, sm, handed, submitted = await _installer(nursery)
        handle = installer.handler(handed.append)
        handle(_message(_good_snapshot()))
        append = Inbound(AppendEntries(3, 2, 1, 40, 3, (), 40))
        beat = Inbound(Heartbeat(3, 2, 1, 40))
        other = Inbound(AppendEntries(4, 3, 1, 40, 3, (), 40))
        for item in (append, beat, other):
            handle(item)
        assert handed == [beat, other], "only the sender's appends are held back"
        with trio.fail_after(10):
            while not submitted:
                await trio.sleep(0)
        (prepared,) = submitted
        assert isinstance(prepared, SnapshotPrepared)
        assert len(sm) == 0, "nothing changes until the core asks for it"
        handle(prepared)
        assert handed[-1] is prepared.inbound
        taken = installer.take(prepared.state.metadata)
        assert taken is not None
        taken.install()
        assert len(sm) == 2000
        handle(append)  # read: the appends reach the core again
        assert handed[-1] is append


async def test_a_damaged_snapshot_is_dropped_and_the_node_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="raftkv.node")
    async with trio.open_nursery() as nursery:
        installer, sm, handed, submitted = await _installer(nursery)
        handle = installer.handler(handed.append)
        data = bytearray(_good_snapshot())
        data[len(data) // 2] ^= 0xFF
        handle(_message(bytes(data)))
        with trio.fail_after(10):
            while "cannot be read" not in caplog.text:
                await trio.sleep(0)
        assert not submitted and len(sm) == 0
        append = Inbound(AppendEntries(3, 2, 1, 40, 3, (), 40))
        handle(append)
        assert handed == [append], "no longer waiting for that snapshot"


async def test_a_newer_snapshot_replaces_the_one_being_read() -> None:
    async with trio.open_nursery() as nursery:
        installer, _, handed, submitted = await _installer(nursery)
        handle = installer.handler(handed.append)
        data = _good_snapshot()
        handle(_message(data, index=50))
        handle(_message(data, index=50))  # sent again: the first copy will do
        handle(_message(data, index=60))
        with trio.fail_after(10):
            while not submitted:
                await trio.sleep(0)
            await trio.testing.wait_all_tasks_blocked()
        assert [s.state.metadata.index for s in submitted] == [60]  # type: ignore[union-attr]
        assert handed == []


class CollectorWatchingStore(KVStateMachine):
    """Notes at every step of reading a snapshot whether the garbage collector may run."""

    def __init__(self) -> None:
        super().__init__()
        self.collector_enabled: list[bool] = []

    def restore_steps(self, stream):  # type: ignore[no-untyped-def]
        steps = super().restore_steps(stream)
        while True:
            self.collector_enabled.append(gc.isenabled())
            try:
                next(steps)
            except StopIteration as done:
                return done.value
            yield


async def test_no_collection_runs_while_a_snapshot_is_read() -> None:
    """Reading a snapshot beside the loop makes a great many objects and no cycles: the
    collector is paused meanwhile (it would walk the half-built state again and again), and
    runs again afterwards."""
    assert gc.isenabled()
    sm = CollectorWatchingStore()
    installer = SnapshotInstaller(1, sm, NodeStatistics(), GcTuning(enabled=True))
    submitted: list[InboxItem] = []

    async def submit(item: InboxItem) -> None:
        submitted.append(item)

    async with trio.open_nursery() as nursery:
        installer.start(nursery, submit)
        installer.handler(lambda item: None)(_message(_good_snapshot()))
        with trio.fail_after(10):
            while not submitted:
                await trio.sleep(0)
    assert len(sm.collector_enabled) > 3 and not any(sm.collector_enabled)
    assert gc.isenabled()
