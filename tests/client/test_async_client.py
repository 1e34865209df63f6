"""AsyncClient under Trio: the same calls and the same failover, awaited."""

import inspect
import io
import threading
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from fake_cluster import ENDPOINTS, FakeCluster, async_client

from raftkv.client import (
    AsyncClient,
    Client,
    KeyNotFound,
    OutcomeUnknown,
    PreconditionFailed,
    RetryPolicy,
    Unavailable,
)
from raftkv_cli._backup import read_backup

N1, N2, N3 = ENDPOINTS


def test_both_clients_have_the_same_api() -> None:
    def api(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_") and name not in ("close", "aclose")
        }

    sync, asynchronous = api(Client), api(AsyncClient)
    assert sync.keys() == asynchronous.keys()
    # Some methods return an object rather than a result: a transaction builder (whose commit
    # is awaited), a watch (iterated with async for), and the context managers of leases, locks
    # and elections (entered with async with).
    builders = {
        "txn": "Txn[Awaitable[TxnResponse]]",
        "watch": "AsyncWatch",
        "lease": "AbstractAsyncContextManager[AsyncLease]",
        "lock": "AbstractAsyncContextManager[AsyncHeldLock]",
        "election": "AbstractAsyncContextManager[AsyncElection]",
    }
    for name, signature in sync.items():
        assert list(signature.parameters) == list(asynchronous[name].parameters), name
        if name in builders:
            assert asynchronous[name].return_annotation == builders[name], name
        else:
            assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name


async def test_calls(cluster: FakeCluster) -> None:
    async with async_client(cluster) as client:
        assert (await client.put("a", "1")).revision == 1
        assert (await client.get("a")).value == b"1"
        with pytest.raises(PreconditionFailed):
            await client.put("a", "2", if_revision=0)
        await client.put("a/b", b"\xff")
        assert [kv.key for kv in (await client.get_prefix("a")).kvs] == [b"a", b"a/b"]
        assert (await client.delete("a")).revision == 3
        with pytest.raises(KeyNotFound):
            await client.get("a")
        assert [m.id for m in await client.add_member(4, "http://n4:42379")] == [1, 2, 3, 4]
        assert [m.id for m in await client.remove_member(4)] == [1, 2, 3]
        assert len(await client.members()) == 3
        await client.transfer_leadership(3)
        assert (await client.status())["leader"] == 3


async def test_failover(cluster: FakeCluster) -> None:
    cluster.script(N1, httpx.ConnectError)
    cluster.script(N2, 503)
    async with async_client(cluster) as client:
        await client.put("k", "v")
        cluster.script(N3, httpx.ReadTimeout)
        with pytest.raises(OutcomeUnknown):
            await client.put("k", "w")
    assert cluster.endpoints_seen() == [N1, N2, N3, N3]
    assert cluster.kv.get(b"k").value == b"v"  # type: ignore[union-attr]


async def test_pauses_use_trio_sleep(
    cluster: FakeCluster, autojump_clock: trio.testing.MockClock
) -> None:
    for endpoint in ENDPOINTS:
        cluster.script(endpoint, 503, 503)
    policy = RetryPolicy(rounds=3, backoff=0.25, max_backoff=0.5, jitter=False)
    start = trio.current_time()
    async with async_client(cluster, policy) as client:
        await client.put("k", "v")
    # Two full rounds refused: a pause after each (Retry-After 1 s, capped at 0.5 s).
    assert trio.current_time() - start == pytest.approx(1.0)
    assert cluster.kv.revision == 1


async def test_giving_up(cluster: FakeCluster) -> None:
    for endpoint in ENDPOINTS:
        cluster.script(endpoint, httpx.ConnectError, httpx.ConnectError)
    async with async_client(cluster) as client:
        with pytest.raises(Unavailable, match="gave up after 6 tries"):
            await client.get("k")


async def test_concurrent_requests(cluster: FakeCluster) -> None:
    async with async_client(cluster) as client, trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(client.put, f"k{i:02}", str(i))
    assert len(cluster.kv) == 20


class _ThreadRecordingFile(io.BytesIO):
    """A file that notes which threads wrote to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[int] = set()

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writers.add(threading.get_ident())
        return super().write(data)


async def test_save_snapshot_writes_the_file_off_the_event_loop(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    async with async_client(cluster) as client:
        for i in range(50):
            await client.put(f"k{i}", b"x" * 1000)
        cluster.script(N1, 503)  # the first member cannot: the file is rewritten from another's
        file = _ThreadRecordingFile()
        file.write(b"left over from before")
        file.writers.clear()
        saved = await client.save_snapshot(file)
    assert saved.endpoint == N2 and saved.size == len(file.getvalue())
    assert threading.get_ident() not in file.writers and file.writers
    (tmp_path / "backup.snap").write_bytes(file.getvalue())
    info, store = read_backup(tmp_path / "backup.snap")
    assert info.revision == 50 and store.get(b"k7").value == b"x" * 1000
