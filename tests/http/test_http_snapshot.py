"""Backups: ``GET /v1/snapshot`` streams a consistent snapshot; a new cluster restored from it
has the same keys, revisions, history and leases; a damaged file is refused clearly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

import raftkv
from raftkv.kv import KVService, KVStateMachine
from raftkv.storage import open_file_storage
from raftkv.transport import MemoryNetwork
from raftkv_cli._app import create_app
from raftkv_cli._backup import BackupError, read_backup, restore_backup


@pytest.fixture
async def api(kv_service: KVService) -> AsyncIterator[tuple[httpx.AsyncClient, KVService]]:
    app = create_app(kv_service)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client, kv_service


async def _save(client: httpx.AsyncClient, path: Path) -> httpx.Response:
    r = await client.get("/v1/snapshot")
    assert r.status_code == 200, r.text
    path.write_bytes(r.content)
    return r


async def test_a_backup_restores_into_a_new_cluster(api, tmp_path: Path) -> None:
    client, service = api
    for i in range(50):
        await service.put(b"k%02d" % (i % 20), b"v%d" % i)
    lease = await service.leases.grant(60)
    await service.put(b"leased", b"x", lease=lease.lease)
    await service.compact(10)
    backup = tmp_path / "backup.snap"
    r = await _save(client, backup)
    info, _ = read_backup(backup)
    assert int(r.headers["x-raftkv-revision"]) == info.revision == service.store.revision
    assert info.keys == 21 and info.leases == 1 and info.compact_revision == 10

    peers = {i: f"http://new-{i}:1" for i in (1, 2, 3)}
    for i in peers:
        await restore_backup(
            backup, tmp_path / f"n{i}", node_id=i, cluster_id="restored", peers=peers
        )
    net = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        nodes: list[tuple[raftkv.Node, KVStateMachine]] = []

        async def run(i: int, *, task_status: trio.TaskStatus[None]) -> None:
            async with (
                open_file_storage(tmp_path / f"n{i}" / "raft") as storage,
                net.open_transport(i, peers=[j for j in peers if j != i]) as transport,
                raftkv.open_node(
                    raftkv.NodeConfig(id=i, tick_interval=0.01),
                    storage=storage,
                    transport=transport,
                    state_machine=(store := KVStateMachine()),
                ) as node,
            ):
                nodes.append((node, store))
                task_status.started()
                await trio.sleep_forever()

        for i in peers:
            await nursery.start(run, i)
        node, store = nodes[0]
        restored = KVService(node, store)
        assert (await restored.put(b"after", b"restore")).revision == info.revision + 1
        for rev in (10, 30, info.revision):  # the history came along: reads at past revisions
            assert store.range(revision=rev).kvs == service.store.range(revision=rev).kvs
        assert store.lease(lease.lease) is not None
        nursery.cancel_scope.cancel()


async def test_a_damaged_backup_is_refused_clearly(api, tmp_path: Path) -> None:
    client, service = api
    await service.put(b"k", b"v")
    good = tmp_path / "good.snap"
    await _save(client, good)
    data = good.read_bytes()
    cases = {
        "truncated": data[:-10],
        "flipped": data[:20] + bytes([data[20] ^ 1]) + data[21:],
        "foreign": b"NOTRAFTK" + data[8:],
        "empty": b"",
    }
    messages = {
        "truncated": "truncated",
        "flipped": "checksum mismatch",
        "foreign": "not a raftkv backup",
        "empty": "too short",
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.snap"
        path.write_bytes(content)
        with pytest.raises(BackupError, match=messages[name]):
            read_backup(path)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "something").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        await restore_backup(good, target, node_id=1, cluster_id="c", peers={1: "http://a:1"})
