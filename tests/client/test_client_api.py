"""Client against a fake cluster: every call, keys of every shape, results and positions."""

from pathlib import Path

import pytest
from fake_cluster import FakeCluster

from raftkv.client import (
    Client,
    Conflict,
    KeyNotFound,
    Member,
    NotFound,
    Position,
    PreconditionFailed,
    PutResponse,
    Value,
)
from raftkv.kv import KeyValue
from raftkv_cli._backup import read_backup


def test_put_get_delete(client: Client, cluster: FakeCluster) -> None:
    assert client.put("greeting", "hello") == PutResponse(1, Position(1, 3))
    assert client.get("greeting") == Value(b"greeting", b"hello", 1, Position(1, 3))
    assert client.get(b"greeting").text == "hello"
    assert client.put(b"greeting", b"bye").revision == 2
    response = client.delete("greeting")
    assert (response.revision, response.position) == (3, Position(3, 3))
    with pytest.raises(KeyNotFound) as info:
        client.get("greeting")
    assert info.value.status == 404
    assert info.value.error == "key not found"
    with pytest.raises(KeyNotFound):
        client.delete("greeting")
    assert [s.method for s in cluster.seen] == [
        "PUT",
        "GET",
        "GET",
        "PUT",
        "DELETE",
        "GET",
        "DELETE",
    ]


@pytest.mark.parametrize(
    "key",
    [
        b"a/b/c",
        b"/leading",
        b"trailing/",
        b"a//b",
        b"..",
        b"a/./b",
        b"a/../b",
        b"...",
        b"space and ? # % & + = ;",
        "caf\u00e9/\u65e5\u672c".encode(),
        b"\xff\x00\x01 not utf-8",
        b"v1/kv",
    ],
)
def test_any_key_reaches_the_server_intact(
    client: Client, cluster: FakeCluster, key: bytes
) -> None:
    client.put(key, b"value")
    assert cluster.kv.get(key) is not None
    assert client.get(key).value == b"value"
    client.delete(key)
    assert cluster.kv.get(key) is None


def test_key_path_encoding_on_the_wire(client: Client, cluster: FakeCluster) -> None:
    client.put("dir/.. /x y", "v")
    assert cluster.seen[-1].target == "/v1/kv/dir/..%20/x%20y"
    client.put("a/../b", "v")
    assert cluster.seen[-1].target == "/v1/kv/a/%2E%2E/b"


def test_empty_values(client: Client) -> None:
    client.put("k", b"")
    assert client.get("k").value == b""


def test_bad_arguments_fail_before_sending(client: Client, cluster: FakeCluster) -> None:
    with pytest.raises(ValueError, match="empty"):
        client.put("", "v")
    with pytest.raises(TypeError, match="must be str or bytes"):
        client.put("k", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="if_revision"):
        client.put("k", "v", if_revision=-1)
    with pytest.raises(ValueError, match="limit"):
        client.get_prefix("k", limit=0)
    with pytest.raises(ValueError, match="member id"):
        client.remove_member(0)
    assert cluster.seen == []


def test_compare_and_swap(client: Client, cluster: FakeCluster) -> None:
    rev = client.put("k", "1", if_revision=0).revision
    assert cluster.seen[-1].headers["if-none-match"] == "*"
    assert rev == 1
    with pytest.raises(PreconditionFailed) as info:
        client.put("k", "again", if_revision=0)
    assert info.value.mod_revision == 1
    assert info.value.status == 412
    assert client.put("k", "2", if_revision=rev).revision == 2
    assert cluster.seen[-1].headers["if-match"] == '"1"'
    with pytest.raises(PreconditionFailed) as info:
        client.put("k", "3", if_revision=rev)
    assert info.value.mod_revision == 2
    with pytest.raises(PreconditionFailed) as info:
        client.delete("k", if_revision=1)
    assert info.value.mod_revision is None  # this server sends no ETag with a failed delete
    client.delete("k", if_revision=2)
    assert client.get_prefix().kvs == ()


def test_get_prefix(client: Client, cluster: FakeCluster) -> None:
    for key in ("app/a", "app/b", "app/c", "other"):
        client.put(key, key.upper())
    client.put(b"app/\xff", b"\x00\xfe")
    page = client.get_prefix("app/")
    assert page.kvs == (
        KeyValue(b"app/a", b"APP/A", 1, 1, 1),
        KeyValue(b"app/b", b"APP/B", 2, 2, 1),
        KeyValue(b"app/c", b"APP/C", 3, 3, 1),
        KeyValue(b"app/\xff", b"\x00\xfe", 5, 5, 1),
    )
    assert (page.revision, page.more, page.position) == (5, False, Position(5, 3))
    first = client.get_prefix("app/", limit=2)
    assert [kv.key for kv in first.kvs] == [b"app/a", b"app/b"]
    assert first.more
    rest = client.get_prefix("app/", limit=2, after=first.kvs[-1].key)
    assert [kv.key for kv in rest.kvs] == [b"app/c", b"app/\xff"]
    assert not rest.more
    assert cluster.seen[-1].target == "/v1/kv?prefix=app%2F&limit=2&after=app%2Fb"
    assert len(client.get_prefix().kvs) == 5
    client.get_prefix(b"\xff", serializable=True)
    assert cluster.seen[-1].target == "/v1/kv?prefix=%FF&consistency=serializable"


def test_serializable_get(client: Client, cluster: FakeCluster) -> None:
    client.put("k", "v")
    client.get("k", serializable=True)
    assert cluster.seen[-1].target == "/v1/kv/k?consistency=serializable"


def test_members(client: Client, cluster: FakeCluster) -> None:
    members = client.members()
    assert members == (
        Member(1, "http://n1:12379", "http://n1:12380", True, True),
        Member(2, "http://n2:22379", "http://n2:22380", True, False),
        Member(3, "http://n3:32379", "http://n3:32380", True, False),
    )
    after_add = client.add_member(4, "http://n4:42379")
    assert [m.id for m in after_add] == [1, 2, 3, 4]
    assert cluster.seen[-1].headers["content-type"] == "application/json"
    with pytest.raises(Conflict, match="member exists"):
        client.add_member(4, "http://n4:42379")
    assert [m.id for m in client.remove_member(3)] == [1, 2, 4]
    with pytest.raises(NotFound, match="not a member") as info:
        client.remove_member(3)
    assert not isinstance(info.value, KeyNotFound)
    client.transfer_leadership(2)
    assert cluster.leader == 2
    assert client.members()[1].leader
    cluster.learners.add(4)
    assert not client.members()[-1].voter
    assert client.promote_member(4)[-1].voter
    with pytest.raises(Conflict, match="already a voter"):
        client.promote_member(4)


def test_save_snapshot(client: Client, cluster: FakeCluster, tmp_path: Path) -> None:
    client.put("a", "1")
    client.put("b", "2")
    cluster.script("http://n1:12380", 503)  # the first member cannot: another one can
    with (tmp_path / "backup.snap").open("w+b") as file:
        file.write(b"left over from before")
        saved = client.save_snapshot(file)
    assert (saved.revision, saved.index) == (2, 2)
    assert saved.endpoint == "http://n2:22380"
    info, store = read_backup(tmp_path / "backup.snap")
    assert saved.size == (tmp_path / "backup.snap").stat().st_size
    assert info.revision == 2 and store.get(b"b").value == b"2"


def test_status(client: Client) -> None:
    status = client.status()
    assert status["role"] == "leader"
    assert status["leader"] == 1


def test_context_manager_closes(cluster: FakeCluster) -> None:
    c = Client("http://n1:12380", transport=cluster.mock_transport())
    with c:
        c.put("k", "v")
    with pytest.raises(RuntimeError):
        c.get("k")
