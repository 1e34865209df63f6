"""Errors, failover and retries: what is retried, where, after how long, and what is never."""

import time

import httpx
import pytest
from fake_cluster import ENDPOINTS, NO_WAIT, FakeCluster, Script

import raftkv
from raftkv.client import (
    BadRequest,
    Client,
    ClientError,
    Conflict,
    KeyNotFound,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    PreconditionFailed,
    RetryPolicy,
    ServerError,
    Unavailable,
)
from raftkv.client._retry import Attempt, Endpoints

N1, N2, N3 = ENDPOINTS


def test_the_exception_tree_matches_raftkvs() -> None:
    assert issubclass(ClientError, raftkv.RaftError)
    assert issubclass(KeyNotFound, NotFound)
    assert issubclass(PayloadTooLarge, BadRequest)
    assert issubclass(BadRequest, ValueError)
    assert issubclass(Conflict, raftkv.ConfChangeRefused)
    assert issubclass(Unavailable, raftkv.ProposalDropped)
    assert issubclass(OutcomeUnknown, raftkv.OutcomeUnknown)
    for cls in (NotFound, PreconditionFailed, BadRequest, Conflict, Unavailable, OutcomeUnknown):
        assert issubclass(cls, ClientError)
    assert issubclass(ServerError, ClientError)


# status -> what a write (put) and a read (get) raise when a server answers it
STATUSES = [
    (400, BadRequest, BadRequest),
    (405, BadRequest, BadRequest),
    (409, Conflict, Conflict),
    (413, PayloadTooLarge, PayloadTooLarge),
    (418, ServerError, ServerError),
    (500, OutcomeUnknown, ServerError),
    (502, OutcomeUnknown, ServerError),
    (504, OutcomeUnknown, Unavailable),  # a read is retried first, then gives up
]


@pytest.mark.parametrize(("status", "on_write", "on_read"), STATUSES)
def test_status_mapping(
    client: Client,
    cluster: FakeCluster,
    status: int,
    on_write: type[ClientError],
    on_read: type[ClientError],
) -> None:
    for endpoint in ENDPOINTS:
        cluster.script(endpoint, *[status] * 4)
    with pytest.raises(on_write) as info:
        client.put("k", "v")
    assert info.value.status == status
    assert info.value.error == f"scripted {status}"
    assert info.value.detail == f"from {N1}"
    assert info.value.endpoint == N1
    assert f"({status} from {N1})" in str(info.value)
    with pytest.raises(on_read):
        client.get("k")


def test_plain_text_error_bodies(client: Client, cluster: FakeCluster) -> None:
    cluster.script(N1, lambda request: httpx.Response(400, text="bad key\n"))
    with pytest.raises(BadRequest) as info:
        client.put("k", "v")
    assert info.value.error is None
    assert info.value.detail == "bad key"
    assert str(info.value) == f"Bad Request (400 from {N1}): bad key"


def test_malformed_answers_are_server_errors(client: Client, cluster: FakeCluster) -> None:
    cluster.script(N1, lambda request: httpx.Response(200, text="{not json"))
    with pytest.raises(ServerError, match="malformed JSON"):
        client.members()
    cluster.script(N1, lambda request: httpx.Response(200, json={"kvs": [{"key": 1}]}))
    with pytest.raises(ServerError, match="unexpected answer"):
        client.get_prefix()
    cluster.script(N1, lambda request: httpx.Response(200, json={"members": [{"id": "x"}]}))
    with pytest.raises(ServerError, match="unexpected answer"):
        client.members()
    cluster.script(N1, lambda request: httpx.Response(200, json=[1]))
    with pytest.raises(ServerError):
        client.status()


def test_connect_failure_fails_over_even_for_writes(client: Client, cluster: FakeCluster) -> None:
    cluster.script(N1, httpx.ConnectError)
    client.put("k", "v")
    assert cluster.endpoints_seen() == [N1, N2]
    assert cluster.kv.revision == 1
    # The endpoint that answered is tried first from now on.
    client.get("k")
    assert cluster.endpoints_seen() == [N1, N2, N2]


def test_unavailable_fails_over_even_for_writes(client: Client, cluster: FakeCluster) -> None:
    cluster.script(N1, 503)
    cluster.script(N2, httpx.ConnectTimeout)
    client.put("k", "v")
    assert cluster.endpoints_seen() == [N1, N2, N3]
    assert cluster.kv.revision == 1


@pytest.mark.parametrize("failure", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError])
def test_a_write_that_may_have_been_sent_is_never_retried(
    client: Client, cluster: FakeCluster, failure: type[Exception]
) -> None:
    cluster.script(N1, failure)
    with pytest.raises(OutcomeUnknown, match="may or may not have been applied") as info:
        client.put("k", "v")
    assert isinstance(info.value.__cause__, failure)
    assert cluster.endpoints_seen() == [N1]


def test_a_write_timing_out_on_the_server_is_never_retried(
    client: Client, cluster: FakeCluster
) -> None:
    cluster.script(N1, 504)
    with pytest.raises(OutcomeUnknown, match="outcome unknown"):
        client.delete("k")
    cluster.script(N1, httpx.ConnectError)  # not sent: try the next one
    cluster.script(N2, 504)
    with pytest.raises(OutcomeUnknown):
        client.add_member(4, "http://n4:1")
    assert cluster.endpoints_seen() == [N1, N1, N2]


@pytest.mark.parametrize("failure", [httpx.ReadTimeout, httpx.RemoteProtocolError, 504])
def test_reads_are_retried_elsewhere(client: Client, cluster: FakeCluster, failure: Script) -> None:
    client.put("k", "v")
    cluster.script(N1, failure)
    assert client.get("k").value == b"v"
    assert cluster.endpoints_seen() == [N1, N1, N2]


def test_giving_up(cluster: FakeCluster) -> None:
    policy = RetryPolicy(rounds=3, backoff=0, max_backoff=0, jitter=False)
    for endpoint in ENDPOINTS:
        cluster.script(endpoint, 503, httpx.ConnectError, 503)
    with (
        Client(list(ENDPOINTS), retry=policy, transport=cluster.mock_transport()) as client,
        pytest.raises(Unavailable) as info,
    ):
        client.put("k", "v")
    assert cluster.endpoints_seen() == [N1, N2, N3] * 3
    assert "gave up after 9 tries" in str(info.value)
    assert info.value.status == 503
    assert info.value.retry_after == 1.0
    assert cluster.kv.revision == 0


def test_unreachable_everywhere(cluster: FakeCluster) -> None:
    with Client(ENDPOINTS[0], retry=NO_WAIT, transport=cluster.mock_transport()) as client:
        cluster.script(N1, httpx.ConnectError, httpx.ConnectError)
        with pytest.raises(Unavailable, match=r"unreachable.*gave up after 2 tries") as info:
            client.get("k")
    assert info.value.status is None
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_pauses_between_rounds_honour_retry_after(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    policy = RetryPolicy(rounds=4, backoff=0.1, max_backoff=1.5, jitter=False)
    for endpoint in ENDPOINTS[:2]:
        cluster.script(endpoint, 503, 503, 503)
    with Client(list(ENDPOINTS[:2]), retry=policy, transport=cluster.mock_transport()) as client:
        client.put("k", "v")
    # No pause between endpoints of one round; after a round, Retry-After (1 s) or the backoff,
    # whichever is longer, capped at max_backoff.
    assert cluster.endpoints_seen() == [N1, N2] * 3 + [N1]
    assert pauses == [1.0, 1.0, 1.0]


def test_retry_policy_pauses() -> None:
    policy = RetryPolicy(backoff=0.1, max_backoff=2.0, jitter=False)
    assert [policy.pause(n, None) for n in (1, 2, 3, 4, 5, 6, 100)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.6,
        2.0,
        2.0,
    ]
    assert policy.pause(1, 1.0) == 1.0
    assert policy.pause(1, 60.0) == 2.0
    jittery = RetryPolicy(backoff=1.0, max_backoff=10.0)
    assert all(0.5 <= jittery.pause(1, None) <= 1.0 for _ in range(50))
    with pytest.raises(ValueError, match="rounds"):
        RetryPolicy(rounds=0)


def test_endpoints() -> None:
    assert Endpoints("http://a:1, https://b:2/ ").urls == ("http://a:1", "https://b:2")
    assert Endpoints(["http://a:1"]).urls == ("http://a:1",)
    for bad in ("", "a:1", "ftp://a:1", "http://a:x", "http://a:1?q"):
        with pytest.raises(ValueError, match="endpoint"):
            Endpoints(bad)
    with pytest.raises(ValueError, match="no endpoints"):
        Endpoints([])


def test_attempt_rotates_from_the_preferred_endpoint() -> None:
    endpoints = Endpoints(list(ENDPOINTS))
    endpoints.preferred = 2
    attempt = Attempt(endpoints, NO_WAIT, idempotent=True)
    order = [attempt.endpoint]
    for _ in range(5):
        attempt.transport_failed(httpx.ConnectError("refused"))
        order.append(attempt.endpoint)
    assert order == [N3, N1, N2, N3, N1, N2]
    with pytest.raises(Unavailable):
        attempt.transport_failed(httpx.ConnectError("refused"))
    assert endpoints.preferred == 2  # nobody answered: keep the old preference
