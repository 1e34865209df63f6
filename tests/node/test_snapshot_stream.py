"""Snapshots that stay on disk: built into a file beside the raft loop, streamed from that file
to a follower, spooled into a file there, read into a new state beside its loop, then installed.

Three key-value nodes over TCP on loopback with ``FileStorage``, in real time. A follower wiped
clean (a founding member restarted with an empty data directory) is brought back by the
leader's snapshot, while the cluster keeps taking writes; the snapshot never travels as one
``bytes`` object: the leader holds a ``StoredSnapshot`` over its file, the follower installs one
over the file its transport spooled into its own data directory.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import trio

import raftkv
from e2e._procs import free_ports
from raftkv.kv import KVStateMachine, encode_put
from raftkv.storage import StoredSnapshot, open_file_storage
from raftkv.storage._snapfile import StoredIn
from raftkv.transport import open_tcp_transport

FAST = {"tick_interval": 0.01, "election_ticks": 20}


class KVCluster:
    def __init__(self, nursery: trio.Nursery, root: Path, n: int, **config: object) -> None:
        self.nursery = nursery
        self.root = root
        ports = free_ports(n)
        self.urls = {i: f"http://127.0.0.1:{ports[i - 1]}" for i in range(1, n + 1)}
        self.config = {**FAST, **config}
        self.nodes: dict[int, raftkv.Node] = {}
        self.machines: dict[int, KVStateMachine] = {}
        self.scopes: dict[int, trio.CancelScope] = {}
        self.stopped: dict[int, trio.Event] = {}

    def directory(self, i: int) -> Path:
        return self.root / f"node-{i}"

    async def start(self, i: int) -> None:
        self.machines[i] = KVStateMachine()
        self.stopped[i] = trio.Event()
        await self.nursery.start(self._run, i)

    async def _run(self, i: int, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            with trio.CancelScope() as scope:
                self.scopes[i] = scope
                port = int(self.urls[i].rsplit(":", 1)[1])
                async with AsyncExitStack() as stack:
                    storage = await stack.enter_async_context(
                        open_file_storage(self.directory(i), snapshot_pace_bytes=16 << 10)
                    )
                    transport = await stack.enter_async_context(
                        open_tcp_transport(
                            i, "test", self.urls, listen_host="127.0.0.1", listen_port=port
                        )
                    )
                    node = await stack.enter_async_context(
                        raftkv.open_node(
                            raftkv.NodeConfig(id=i, **self.config),  # type: ignore[arg-type]
                            storage=storage,
                            transport=transport,
                            state_machine=self.machines[i],
                            peers=self.urls,
                        )
                    )
                    self.nodes[i] = node
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            self.nodes.pop(i, None)
            self.stopped[i].set()

    async def stop(self, i: int) -> None:
        self.scopes[i].cancel()
        await self.stopped[i].wait()

    async def leader(self) -> raftkv.Node:
        node = next(iter(self.nodes.values()))
        leader = await node.wait_leader()
        return self.nodes[leader]


@asynccontextmanager
async def open_kv_cluster(root: Path, n: int = 3, **config: object) -> AsyncIterator[KVCluster]:
    async with trio.open_nursery() as nursery:
        cluster = KVCluster(nursery, root, n, **config)
        for i in range(1, n + 1):
            await cluster.start(i)
        yield cluster
        nursery.cancel_scope.cancel()


def _snapshot_of(node: raftkv.Node) -> raftkv.core.Snapshot:
    return node._snapshotter._log_store.snapshot()


async def _put(node: raftkv.Node, first: int, count: int) -> None:
    async def put_range(start: int) -> None:
        for k in range(start, first + count, 8):
            await node.propose(encode_put(b"key-%06d" % k, b"v" * 100))

    async with trio.open_nursery() as nursery:
        for start in range(first, first + 8):
            nursery.start_soon(put_range, start)


async def test_a_wiped_follower_is_caught_up_by_a_snapshot_that_stays_on_disk(
    tmp_path: Path,
) -> None:
    config = {"snapshot_count": 300, "catch_up_entries": 50}
    with trio.fail_after(120):
        async with open_kv_cluster(tmp_path, **config) as c:
            leader = await c.leader()
            await _put(leader, 0, 1500)
            follower = next(i for i in c.nodes if i != leader.id)
            await c.stop(follower)
            shutil.rmtree(c.directory(follower))
            await _put(leader, 1500, 500)  # the cluster goes on while it is away
            await leader.wait_status(lambda _: leader.statistics().snapshots_taken >= 2)
            held = _snapshot_of(leader)
            assert isinstance(held, StoredSnapshot), "the leader holds its snapshot on disk"
            await c.start(follower)
            node = c.nodes[follower]
            async with trio.open_nursery() as writing:
                writing.start_soon(_put, leader, 2000, 300)  # and while it catches up
                await node.wait_status(lambda s: s.applied >= held.metadata.index)
            await _put(leader, 2300, 10)
            await node.wait_status(lambda s: s.applied >= leader.status().applied)
            stats = node.statistics()
            assert stats.snapshots_restored >= 1
            assert stats.snapshot_prepare_seconds > 0, "read beside the loop, then installed"
            installed = _snapshot_of(node)
            assert isinstance(installed, StoredSnapshot)
            origin = installed.file.origin
            assert isinstance(origin, StoredIn)
            assert origin.directory == str(c.directory(follower)), "spooled into its own files"
            assert c.machines[follower].range().kvs == c.machines[leader.id].range().kvs
            assert len(c.machines[follower]) == 2310
