"""Reads at a revision, compaction and delete by prefix from the client, and the errors they
raise (``Compacted`` with the compaction point, ``FutureRevision``)."""

import httpx
import pytest
from fake_cluster import ENDPOINTS, FakeCluster, async_client

import raftkv
from raftkv.client import (
    BadRequest,
    Client,
    ClientError,
    Compacted,
    FutureRevision,
    KeyNotFound,
    OutcomeUnknown,
    ServerError,
)

N1 = ENDPOINTS[0]


def test_the_new_errors_in_the_tree() -> None:
    assert issubclass(Compacted, ClientError) and issubclass(Compacted, raftkv.Compacted)
    assert issubclass(FutureRevision, BadRequest)
    assert issubclass(FutureRevision, raftkv.FutureRevision)


def test_reads_at_a_revision(client: Client, cluster: FakeCluster) -> None:
    client.put("k", "1")
    client.put("k", "2")
    client.put("j", "x")
    assert client.get("k", revision=1).value == b"1"
    assert client.get("k", revision=1).mod_revision == 1
    assert cluster.seen[-1].target == "/v1/kv/k?revision=1"
    assert client.get("k", revision=3, serializable=True).value == b"2"
    assert cluster.seen[-1].target == "/v1/kv/k?revision=3&consistency=serializable"
    with pytest.raises(KeyNotFound):
        client.get("j", revision=2)
    page = client.get_prefix("", revision=2)
    assert [(kv.key, kv.value) for kv in page.kvs] == [(b"k", b"2")]
    assert cluster.seen[-1].target == "/v1/kv?prefix=&revision=2"
    for bad in (0, -1, "1", 1.0, True):
        with pytest.raises(ValueError, match="revision"):
            client.get("k", revision=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="revision"):
            client.get_prefix("k", revision=bad)  # type: ignore[arg-type]


def test_compaction_and_compacted(client: Client, cluster: FakeCluster) -> None:
    for i in range(4):
        client.put("k", str(i))
    done = client.compact(3)
    assert (done.revision, done.compact_revision) == (4, 3)
    assert done.position is not None
    with pytest.raises(Compacted) as info:
        client.get("k", revision=2)
    assert info.value.compact_revision == 3
    assert info.value.status == 410 and info.value.error == "revision compacted"
    assert client.get("k", revision=3).value == b"2"
    with pytest.raises(Compacted) as info:
        client.compact(3)
    assert info.value.compact_revision == 3
    with pytest.raises(FutureRevision) as future:
        client.get("k", revision=9)
    assert future.value.current == 4 and future.value.status == 400
    with pytest.raises(ValueError, match="revision"):
        client.compact(0)


def test_a_compaction_whose_outcome_is_unknown_is_not_retried(
    client: Client, cluster: FakeCluster
) -> None:
    client.put("k", "v")
    cluster.script(N1, httpx.ReadTimeout)
    with pytest.raises(OutcomeUnknown):
        client.compact(1)
    assert cluster.endpoints_seen() == [N1, N1]


def test_delete_by_prefix(client: Client, cluster: FakeCluster) -> None:
    for key in ("a/1", "a/2", "b"):
        client.put(key, "v")
    done = client.delete(prefix="a/")
    assert (done.revision, done.deleted) == (4, 2)
    assert cluster.seen[-1].target == "/v1/kv?prefix=a%2F"
    assert client.delete(prefix="zz").deleted == 0
    assert client.delete(prefix=b"").deleted == 1
    assert client.delete(prefix="").revision == 5
    assert len(cluster.kv) == 0
    client.put("k", "v")
    assert client.delete("k").deleted == 1


def test_delete_needs_a_key_or_a_prefix(client: Client, cluster: FakeCluster) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        client.delete()
    with pytest.raises(ValueError, match="exactly one"):
        client.delete("k", prefix="k")
    with pytest.raises(ValueError, match="if_revision"):
        client.delete(prefix="k", if_revision=3)
    assert cluster.seen == []


def test_a_malformed_prefix_delete_answer(client: Client, cluster: FakeCluster) -> None:
    cluster.script(N1, lambda request: httpx.Response(200, json={"revision": 1}))
    with pytest.raises(ServerError, match="unexpected answer"):
        client.delete(prefix="a")


async def test_the_async_client_too(cluster: FakeCluster) -> None:
    async with async_client(cluster) as client:
        await client.put("k", "1")
        await client.put("k", "2")
        assert (await client.get("k", revision=1)).value == b"1"
        assert [kv.value for kv in (await client.get_prefix("k", revision=1)).kvs] == [b"1"]
        assert (await client.compact(2)).compact_revision == 2
        with pytest.raises(Compacted):
            await client.get("k", revision=1)
        assert (await client.delete(prefix="k")).deleted == 1
