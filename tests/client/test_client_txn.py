"""Transactions from the client: the builder, what it sends (the daemon's parser reads back
exactly the command built), the results, and a write whose outcome is unknown never resent."""

import httpx
import pytest
from fake_cluster import ENDPOINTS, FakeCluster, async_client
from hypothesis import given
from hypothesis import strategies as st

from raftkv.client import (
    BadRequest,
    Client,
    OutcomeUnknown,
    ServerError,
    TxnDeleteResult,
    TxnGetResult,
    TxnPutResult,
    TxnRangeResult,
    create_revision,
    delete,
    delete_prefix,
    get,
    get_prefix,
    mod_revision,
    put,
    value,
    version,
)
from raftkv.kv import (
    Compare,
    CompareOp,
    CompareTarget,
    DeleteCommand,
    DeletePrefixCommand,
    KeyValue,
    PutCommand,
    RangeOp,
    TxnCommand,
    txn_from_json,
    txn_to_json,
)

N1, N2, _ = ENDPOINTS


def test_compares_read_naturally() -> None:
    assert (value("k") == "v") == Compare(b"k", CompareTarget.VALUE, CompareOp.EQUAL, b"v")
    assert (value(b"k") != b"\xff") == Compare(
        b"k", CompareTarget.VALUE, CompareOp.NOT_EQUAL, b"\xff"
    )
    assert (version("k") > 0) == Compare(b"k", CompareTarget.VERSION, CompareOp.GREATER, 0)
    assert (create_revision("k") == 0).target is CompareTarget.CREATE_REVISION
    assert (mod_revision("k") < 7) == Compare(b"k", CompareTarget.MOD_REVISION, CompareOp.LESS, 7)
    assert repr(version("k")) == "version(b'k')"
    with pytest.raises(TypeError, match="integer"):
        version("k") == "1"  # noqa: B015
    with pytest.raises(TypeError, match="str or bytes"):
        value("k") == 1  # noqa: B015
    with pytest.raises(ValueError, match="empty"):
        value("")
    with pytest.raises(TypeError):
        hash(value("k"))


def test_operations() -> None:
    assert put("k", "v") == PutCommand(b"k", b"v")
    assert get("k") == RangeOp(b"k")
    assert get_prefix("p/", limit=3) == RangeOp(b"p/", True, 3)
    assert get_prefix() == RangeOp(b"", True, None)
    assert delete("k") == DeleteCommand(b"k")
    assert delete_prefix("") == DeletePrefixCommand(b"")
    with pytest.raises(ValueError, match="limit"):
        get_prefix("p", limit=0)


def test_the_builder_is_immutable(client: Client) -> None:
    base = client.txn().compare(version("k") == 0)
    a = base.then(put("k", "a"))
    b = base.then(put("k", "b")).otherwise(get("k"))
    assert base.command == TxnCommand((version("k") == 0,))
    assert a.command.success == (PutCommand(b"k", b"a"),)
    assert b.command.failure == (RangeOp(b"k"),)
    with pytest.raises(TypeError, match="compare"):
        client.txn().compare(True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="operation"):
        client.txn().then(("put", "k"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="if_revision"):
        client.txn().then(PutCommand(b"k", b"v", if_revision=3))


def test_commit_both_branches(client: Client, cluster: FakeCluster) -> None:
    client.put("k", "v")
    client.put("p/1", "x")
    r = (
        client.txn()
        .compare(value("k") == "v", version("k") == 1)
        .then(put("k", "w"), get("k"), get_prefix("p/"), delete("p/1"), delete("absent"))
        .otherwise(get("k"))
        .commit()
    )
    kv = KeyValue(b"k", b"w", 1, 3, 2)
    assert r.succeeded and r.revision == 3 and r.position is not None
    assert r.responses == (
        TxnPutResult(3, KeyValue(b"k", b"v", 1, 1, 1)),
        TxnGetResult((kv,)),
        TxnRangeResult((KeyValue(b"p/1", b"x", 2, 2, 1),), False),
        TxnDeleteResult(1),
        TxnDeleteResult(0),
    )
    assert r.responses[1].kv == kv  # type: ignore[union-attr]
    r = client.txn().compare(value("k") == "v").then(put("k", "never")).otherwise(get("k")).commit()
    assert not r.succeeded and r.revision == 3
    assert r.responses == (TxnGetResult((kv,)),)
    assert cluster.kv.get(b"k") == kv
    r = client.txn().then(put("new", "1")).commit()
    assert r.responses == (TxnPutResult(4, None),)


def test_what_is_sent(client: Client, cluster: FakeCluster) -> None:
    client.txn().compare(mod_revision(b"\xff") < 5).then(get_prefix("a", limit=2)).commit()
    assert cluster.seen[-1].method == "POST" and cluster.seen[-1].target == "/v1/txn"
    assert cluster.seen[-1].headers["content-type"] == "application/json"
    import json

    assert json.loads(cluster.seen[-1].content) == {
        "compare": [{"key_b64": "/w==", "target": "mod_revision", "op": "<", "value": 5}],
        "success": [{"range": {"prefix": "a", "limit": 2}}],
        "failure": [],
    }


keys = st.binary(min_size=1, max_size=8) | st.text(min_size=1, max_size=8).map(str.encode)
prefixes = st.binary(max_size=8)
compares = st.one_of(
    st.builds(
        Compare,
        keys,
        st.just(CompareTarget.VALUE),
        st.sampled_from(list(CompareOp)),
        st.binary(max_size=8),
    ),
    st.builds(
        Compare,
        keys,
        st.sampled_from([t for t in CompareTarget if t is not CompareTarget.VALUE]),
        st.sampled_from(list(CompareOp)),
        st.integers(0, (1 << 63) - 1),
    ),
)
ops = st.one_of(
    st.builds(PutCommand, keys, st.binary(max_size=8)),
    st.builds(RangeOp, keys),
    st.builds(RangeOp, prefixes, st.just(True), st.none() | st.integers(1, 1000)),
    st.builds(DeleteCommand, keys),
    st.builds(DeletePrefixCommand, prefixes),
)
txns = st.builds(
    TxnCommand,
    st.lists(compares, max_size=4).map(tuple),
    st.lists(ops, max_size=4).map(tuple),
    st.lists(ops, max_size=4).map(tuple),
)


@given(txns)
def test_the_daemon_reads_back_exactly_what_the_client_sends(txn: TxnCommand) -> None:
    import json

    assert txn_from_json(json.loads(json.dumps(txn_to_json(txn)))) == txn


def test_a_write_whose_outcome_is_unknown_is_never_resent(
    client: Client, cluster: FakeCluster
) -> None:
    for failure in (httpx.ReadTimeout, httpx.RemoteProtocolError, 504, 500):
        cluster.script(N1, failure)
        with pytest.raises(OutcomeUnknown, match="outcome unknown"):
            client.txn().then(put("k", "v")).commit()
    assert cluster.endpoints_seen() == [N1] * 4
    assert cluster.kv.revision == 0
    cluster.script(N1, httpx.ConnectError)  # never sent: safe to send elsewhere
    assert client.txn().then(put("k", "v")).commit().succeeded
    assert cluster.endpoints_seen()[-2:] == [N1, N2]


def test_a_read_only_transaction_is_retried(client: Client, cluster: FakeCluster) -> None:
    client.put("k", "v")
    cluster.script(N1, httpx.ReadTimeout)
    r = client.txn().compare(version("k") > 0).then(get("k")).otherwise(get_prefix("k")).commit()
    assert r.responses[0].kv.value == b"v"  # type: ignore[union-attr]
    assert cluster.endpoints_seen() == [N1, N1, N2]


def test_refusals_and_malformed_answers(client: Client, cluster: FakeCluster) -> None:
    cluster.script(
        N1,
        lambda request: httpx.Response(
            400, json={"error": "bad transaction", "detail": "compare[0].target: unknown"}
        ),
    )
    with pytest.raises(BadRequest, match=r"compare\[0\]"):
        client.txn().commit()
    for body in ({"succeeded": True}, {"succeeded": 1, "revision": 1, "responses": []}):
        cluster.script(N1, lambda request, body=body: httpx.Response(200, json=body))
        with pytest.raises(ServerError, match="unexpected answer"):
            client.txn().commit()
    bad = {"succeeded": True, "revision": 1, "responses": [{"put": {}}]}
    cluster.script(N1, lambda request: httpx.Response(200, json=bad))
    with pytest.raises(ServerError):
        client.txn().then(put("k", "v")).commit()


async def test_the_async_client_awaits_commit(cluster: FakeCluster) -> None:
    async with async_client(cluster) as client:
        await client.put("k", "v")
        r = await client.txn().compare(value("k") == "v").then(delete("k")).commit()
        assert r.succeeded and r.responses == (TxnDeleteResult(1),)


def test_a_transactions_put_may_attach_a_lease() -> None:
    from raftkv.client import put as txn_put
    from raftkv.kv import txn_to_json as to_json

    body = to_json(TxnCommand(success=(txn_put("k", "v", lease=5), txn_put("j", "w"))))
    assert body["success"][0]["put"]["lease"] == 5 and "lease" not in body["success"][1]["put"]
