"""A node restarted from a snapshot applies every entry exactly once: nothing again, nothing lost.

A restart restores the state machine from the newest snapshot and applies only the committed
entries after it. Re-applying what the snapshot already holds (a node that believed it had
applied nothing) or skipping part of the tail would both go unnoticed by a state machine that
overwrites values; these state machines notice:

- ``CountingMachine`` applies numbered commands ``1, 2, 3, ...`` (one writer, in order) and
  raises at once on an index at or below the last one it applied, or a number that is not the
  next one (a repeat or a gap). Its snapshot carries its counters, so a restored one goes on
  counting; it also counts what it applied itself since it was last restored.
- ``CountingKV`` is the key-value store itself: its revision counts puts, each key's version
  counts puts to it, so after any number of restarts they must equal the writes made.

Single nodes (memory and file storage), three nodes restarted together, and a follower that
catches up from the leader's snapshot and is then restarted from it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

import raftkv
from raftkv.kv import KVStateMachine, encode_put
from raftkv.storage import MemoryStorage, Storage, open_file_storage
from raftkv.transport import MemoryNetwork

pytestmark = pytest.mark.trio


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


class CountingMachine:
    """Numbered commands, each applied exactly once and in order, or an ``AssertionError``."""

    def __init__(self) -> None:
        self.last_index = 0  # the last index applied (or restored)
        self.count = 0  # the last command number applied (or restored)
        self.restored_count = 0  # what the last restore brought back
        self.applied_here = 0  # commands this instance applied itself since its last restore
        self.captures = 0  # snapshots taken of this instance
        self.captured = 0  # the command number the last one holds

    def apply(self, index: int, command: bytes) -> object:
        number = int(command)
        if index <= self.last_index:
            raise AssertionError(f"entry {index} applied again (last applied {self.last_index})")
        if number != self.count + 1:
            kind = "again" if number <= self.count else "after a gap"
            raise AssertionError(f"command {number} applied {kind}: the last was {self.count}")
        self.last_index, self.count = index, number
        self.applied_here += 1
        return number

    def snapshot(self) -> bytes:
        self.captures += 1
        self.captured = self.count
        return b"%d %d" % (self.last_index, self.count)

    def restore(self, data: bytes) -> None:
        last_index, count = (int(v) for v in data.split())
        self.last_index, self.count = last_index, count
        self.restored_count = count
        self.applied_here = 0


class CountingKV(KVStateMachine):
    """The key-value store, counting what it applied itself since its last restore."""

    def __init__(self) -> None:
        super().__init__()
        self.applied_here = 0
        self.restored_revision = 0

    def apply(self, index: int, command: bytes) -> object:
        result = super().apply(index, command)
        self.applied_here += 1
        return result

    def restore(self, data: bytes) -> None:
        super().restore(data)
        self.restored_revision = self.revision
        self.applied_here = 0


Machine = CountingMachine | CountingKV


@dataclass
class Replica:
    id: int
    directory: Path | None  # FileStorage here; None: MemoryStorage
    memory: MemoryStorage = field(default_factory=MemoryStorage)
    sm: Machine = field(default_factory=CountingMachine)
    node: raftkv.Node | None = None
    scope: trio.CancelScope | None = None
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def n(self) -> raftkv.Node:
        assert self.node is not None, f"node {self.id} is not running"
        return self.node


class Group:
    """Nodes on one memory network, each with its own storage; stopped and restarted at will."""

    def __init__(
        self,
        nursery: trio.Nursery,
        ids: list[int],
        directory: Path | None,
        make_sm: Callable[[], Machine],
        **config: object,
    ) -> None:
        self.nursery = nursery
        self.net = MemoryNetwork(rng=random.Random(0))
        self.ids = ids
        self.make_sm = make_sm
        self.config = config
        self.replicas = {
            i: Replica(i, None if directory is None else directory / f"node-{i}") for i in ids
        }

    async def start(self, i: int) -> Replica:
        r = self.replicas[i]
        r.sm = self.make_sm()
        r.stopped = trio.Event()
        await self.nursery.start(self._run, r)
        return r

    async def _run(self, r: Replica, *, task_status: trio.TaskStatus[None]) -> None:
        config = raftkv.NodeConfig(id=r.id, seed=r.id, **self.config)  # type: ignore[arg-type]
        peers = {i: f"http://node{i}:1" for i in self.ids}
        try:
            with trio.CancelScope() as scope:
                r.scope = scope
                async with (
                    self._storage(r) as storage,
                    self.net.open_transport(r.id, peers=[i for i in self.ids if i != r.id]) as t,
                    raftkv.open_node(
                        config, storage=storage, transport=t, state_machine=r.sm, peers=peers
                    ) as node,
                ):
                    r.node = node
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            r.node = None
            r.stopped.set()

    @asynccontextmanager
    async def _storage(self, r: Replica) -> AsyncIterator[Storage]:
        if r.directory is None:
            yield r.memory
            return
        async with open_file_storage(r.directory, segment_bytes=8192, thread_io="never") as s:
            yield s

    async def stop(self, i: int) -> None:
        """Stop node ``i``; it keeps what its storage made durable (memory: a crash)."""
        r = self.replicas[i]
        assert r.scope is not None
        r.scope.cancel()
        await r.stopped.wait()
        r.memory = r.memory.crash()

    async def restart(self, i: int) -> Replica:
        await self.stop(i)
        return await self.start(i)

    async def wait_leader(self) -> int:
        while True:
            running = [r for r in self.replicas.values() if r.node is not None]
            leaders = {r.n.status().leader for r in running}
            leader = leaders.pop() if len(leaders) == 1 else None
            if leader is not None and self.replicas[leader].node is not None:
                return leader
            await trio.sleep(0.05)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await trio.sleep(0.05)


@asynccontextmanager
async def open_group(
    n: int, directory: Path | None, make_sm: Callable[[], Machine], **config: object
) -> AsyncIterator[Group]:
    async with trio.open_nursery() as nursery:
        group = Group(nursery, list(range(1, n + 1)), directory, make_sm, **config)
        for i in group.ids:
            await group.start(i)
        try:
            yield group
        finally:
            nursery.cancel_scope.cancel()


def _counting(r: Replica) -> CountingMachine:
    assert isinstance(r.sm, CountingMachine)
    return r.sm


async def _propose_numbers(g: Group, first: int, last: int) -> None:
    """Commands ``first..last``, one at a time, through the leader."""
    leader = await g.wait_leader()
    for number in range(first, last + 1):
        assert await g.replicas[leader].n.propose(b"%d" % number) == number


async def _wait_count(g: Group, sm: CountingMachine, count: int) -> None:
    await g.wait_until(lambda: sm.count == count)


def _reached(kv: CountingKV, revision: int) -> bool:
    return kv.revision >= revision


async def _wait_snapshot(g: Group, i: int, *, at_least: int) -> None:
    await g.wait_until(lambda: g.replicas[i].n.statistics().snapshots_taken >= at_least)


def _directory(kind: str, tmp_path: Path) -> Path | None:
    return tmp_path if kind == "file" else None


# -- one node ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "file"])
@pytest.mark.parametrize(
    ("snapshot_count", "tail"), [(10, True), (1, False)], ids=["snapshot+tail", "snapshot"]
)
async def test_one_node_restarted_from_a_snapshot_applies_each_command_once(
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    kind: str,
    snapshot_count: int,
    tail: bool,
) -> None:
    config = {"snapshot_count": snapshot_count, "catch_up_entries": 3}
    async with open_group(1, _directory(kind, tmp_path), CountingMachine, **config) as g:
        with trio.fail_after(60):
            total = 0
            for round_ in range(3):
                await _propose_numbers(g, total + 1, total + 25)
                total += 25
                await _wait_snapshot(g, 1, at_least=1)
                if not tail:  # a snapshot per applied entry: wait for the one of the last
                    await g.wait_until(partial(_snapshot_saved_of, g.replicas[1], total))
                r = await g.restart(1)
                sm = _counting(r)
                await _wait_count(g, sm, total)
                assert 0 < sm.restored_count <= total, f"round {round_}: no snapshot restored"
                if tail:
                    assert sm.restored_count < total, "the restart must have a log tail too"
                else:
                    assert sm.restored_count == total
                # Exactly the commands after the snapshot were applied, each once.
                assert sm.applied_here == total - sm.restored_count
                assert r.n.statistics().applied_entries >= sm.applied_here


def _snapshot_saved_of(r: Replica, count: int) -> bool:
    """Whether node ``r`` saved a snapshot holding commands up to ``count``: its machine was
    last captured at ``count`` and every capture has been saved."""
    sm = _counting(r)
    return sm.captured == count and r.n.statistics().snapshots_taken == sm.captures


@pytest.mark.parametrize("kind", ["memory", "file"])
async def test_the_kv_store_counts_every_put_once_across_restarts(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, kind: str
) -> None:
    """Revisions count puts and versions count puts per key: both survive restarts exactly."""
    async with open_group(
        1, _directory(kind, tmp_path), CountingKV, snapshot_count=7, catch_up_entries=2
    ) as g:
        with trio.fail_after(60):
            puts: dict[bytes, list[int]] = {}  # key -> the revisions of its puts
            revision = 0
            for _ in range(3):
                leader = await g.wait_leader()
                for _ in range(30):
                    key = b"key-%d" % (revision % 4)
                    result = await g.replicas[leader].n.propose(encode_put(key, b"%d" % revision))
                    revision += 1
                    assert getattr(result, "revision", None) == revision
                    puts.setdefault(key, []).append(revision)
                await _wait_snapshot(g, leader, at_least=1)
                r = await g.restart(leader)
                kv = r.sm
                assert isinstance(kv, CountingKV)
                await g.wait_until(partial(_reached, kv, revision))
                assert kv.revision == revision
                assert 0 < kv.restored_revision < revision
                assert kv.applied_here == revision - kv.restored_revision
                for key, revisions in puts.items():
                    got = kv.get(key)
                    assert got is not None
                    assert (got.version, got.create_revision, got.mod_revision) == (
                        len(revisions),
                        revisions[0],
                        revisions[-1],
                    ), key
                    assert got.value == b"%d" % (revisions[-1] - 1)


# -- three nodes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "file"])
async def test_three_nodes_restarted_from_snapshots_and_tails_apply_each_command_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, kind: str
) -> None:
    async with open_group(
        3, _directory(kind, tmp_path), CountingMachine, snapshot_count=10, catch_up_entries=2
    ) as g:
        with trio.fail_after(120):
            await _propose_numbers(g, 1, 45)
            for i in g.ids:
                await _wait_snapshot(g, i, at_least=3)
            for i in g.ids:  # all down at once, then all up
                await g.stop(i)
            for i in g.ids:
                await g.start(i)
            await _propose_numbers(g, 46, 50)
            await g.wait_until(lambda: all(_counting(r).count == 50 for r in g.replicas.values()))
            for r in g.replicas.values():
                sm = _counting(r)
                assert 0 < sm.restored_count < 50
                assert sm.applied_here == 50 - sm.restored_count, r.id
            # One at a time, while the others go on.
            total = 50
            for i in g.ids:
                r = await g.restart(i)
                await _propose_numbers(g, total + 1, total + 7)
                total += 7
                sm = _counting(r)
                await _wait_count(g, sm, total)
                assert sm.applied_here == total - sm.restored_count, i
            await g.wait_until(
                lambda: all(_counting(r).count == total for r in g.replicas.values())
            )


@pytest.mark.parametrize("kind", ["memory", "file"])
async def test_a_follower_restored_from_the_leaders_snapshot_applies_each_command_once(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, kind: str
) -> None:
    async with open_group(
        3, _directory(kind, tmp_path), CountingMachine, snapshot_count=10, catch_up_entries=2
    ) as g:
        with trio.fail_after(120):
            leader = await g.wait_leader()
            lagger = next(i for i in g.ids if i != leader)
            await _propose_numbers(g, 1, 5)
            await g.stop(lagger)
            await _propose_numbers(g, 6, 60)  # the leader compacts far past the lagger's log
            assert g.replicas[leader].n.statistics().snapshots_taken >= 4
            r = await g.start(lagger)
            sm = _counting(r)
            await g.wait_until(lambda: sm.count == 60)
            assert r.n.statistics().snapshots_restored >= 1, "it was not sent the snapshot"
            assert sm.restored_count > 5  # the leader's snapshot, not its own log
            assert sm.applied_here == 60 - sm.restored_count
            # Restarted, it starts from the snapshot it received (or a later one of its own).
            r = await g.restart(lagger)
            sm = _counting(r)
            await _propose_numbers(g, 61, 65)
            await g.wait_until(lambda: sm.count == 65)
            assert sm.restored_count > 0
            assert sm.applied_here == 65 - sm.restored_count
