"""Watches from the client against the fake cluster: batches as the server sends them, and a
stream that fails (broken, ended, an error event, a refusal) resumed on the next endpoint
right after the last revision delivered: no duplicate, no gap; a compacted resume point is
raised, never skipped."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fake_cluster import ENDPOINTS, NO_WAIT, FakeCluster, async_client

from raftkv.client import (
    BadRequest,
    Client,
    Compacted,
    RetryPolicy,
    ServerError,
    Unavailable,
    WatchBatch,
)
from raftkv.client._watch import ServerSentEvent, SSEDecoder
from raftkv.kv import CompactCommand, DeleteCommand, PutCommand, encode_command

N1, N2, N3 = ENDPOINTS


def write(cluster: FakeCluster, *keys: str) -> None:
    for key in keys:
        cluster.apply(encode_command(PutCommand(key.encode(), b"v")))


def open_then_write(cluster: FakeCluster, key: str = "k"):
    """A script: the watch stream opens, then ``key`` is written."""

    def script(request: httpx.Request) -> httpx.Response:
        response = cluster.watch_stream(request)
        write(cluster, key)
        return response

    return script


def revisions(batches: list[WatchBatch]) -> list[int]:
    return [b.revision for b in batches]


def take(watch: Iterator[WatchBatch], n: int) -> list[WatchBatch]:
    return [next(watch) for _ in range(n)]


def watch_targets(cluster: FakeCluster) -> list[tuple[str, str]]:
    return [(s.endpoint, s.target) for s in cluster.seen if s.target.startswith("/v1/watch")]


def test_batches_in_order_with_their_events(client: Client, cluster: FakeCluster) -> None:
    write(cluster, "k1", "other", "k2")
    cluster.apply(encode_command(DeleteCommand(b"k1")))
    with client.watch(prefix="k", start_revision=1, prev_kv=True) as watch:
        first, second, deleted = take(watch, 3)
        write(cluster, "k3")  # the stream is read as it is written
        (live,) = take(watch, 1)
    assert revisions([first, second, deleted, live]) == [1, 3, 4, 5]
    (event,) = deleted.events
    assert (event.type, event.kv.key, event.kv.mod_revision) == ("delete", b"k1", 4)
    assert event.prev_kv is not None and event.prev_kv.value == b"v"
    assert first.events[0].prev_kv is None
    assert watch_targets(cluster)[0] == (N1, "/v1/watch?prefix=k&prev_kv=true&start_revision=1")


def test_a_key_and_every_key(client: Client, cluster: FakeCluster) -> None:
    write(cluster, "a", "ab", "a")
    with client.watch("a", start_revision=1) as one, client.watch(start_revision=1) as every:
        assert revisions(take(one, 2)) == [1, 3]
        assert revisions(take(every, 3)) == [1, 2, 3]
    assert [t for _, t in watch_targets(cluster)] == [
        "/v1/watch?key=a&start_revision=1",
        "/v1/watch?start_revision=1",
    ]


def test_a_watch_from_now_learns_its_start(client: Client, cluster: FakeCluster) -> None:
    write(cluster, "k", "k")
    cluster.script(N1, open_then_write(cluster))  # from revision 3
    with client.watch(prefix="k") as watch:  # the stream opens at the first next()
        assert watch.next_revision is None
        (batch,) = take(watch, 1)
        assert batch.revision == 3 and watch.next_revision == 4
    assert watch_targets(cluster) == [(N1, "/v1/watch?prefix=k")]


def test_resume_on_the_next_endpoint_after_a_broken_stream(
    client: Client, cluster: FakeCluster
) -> None:
    write(cluster, *[f"k{i}" for i in range(5)])
    cluster.script(N1, lambda r: cluster.watch_stream(r, changes=2, then="break"))
    with client.watch(prefix="k", start_revision=1) as watch:
        seen = take(watch, 5)
        write(cluster, "k5")
        seen += take(watch, 1)
    assert revisions(seen) == [1, 2, 3, 4, 5, 6]
    assert watch_targets(cluster) == [
        (N1, "/v1/watch?prefix=k&start_revision=1"),
        (N2, "/v1/watch?prefix=k&start_revision=3"),
    ]


def test_resume_where_an_error_event_says(client: Client, cluster: FakeCluster) -> None:
    write(cluster, "k", "k", "k")
    cluster.script(N1, lambda r: cluster.watch_stream(r, changes=1, then="error"))
    with client.watch("k", start_revision=1) as watch:
        assert revisions(take(watch, 3)) == [1, 2, 3]
    assert [t for _, t in watch_targets(cluster)][1] == "/v1/watch?key=k&start_revision=2"


def test_progress_moves_the_resume_point(client: Client, cluster: FakeCluster) -> None:
    write(cluster, "other", "other", "other")
    cluster.script(N1, lambda r: cluster.watch_stream(r, then="break"))
    cluster.script(N2, open_then_write(cluster))
    with client.watch("k", start_revision=1) as watch:
        assert revisions(take(watch, 1)) == [4]
    assert watch_targets(cluster) == [
        (N1, "/v1/watch?key=k&start_revision=1"),
        (N2, "/v1/watch?key=k&start_revision=4"),
    ]


def test_a_member_replaying_what_was_seen_is_not_repeated(
    client: Client, cluster: FakeCluster
) -> None:
    write(cluster, *["k"] * 5)
    cluster.script(N1, lambda r: cluster.watch_stream(r, changes=3, then="break"))
    cluster.script(N2, lambda r: cluster.watch_stream(r, replay=2))
    with client.watch("k", start_revision=1) as watch:
        assert revisions(take(watch, 5)) == [1, 2, 3, 4, 5]


def test_refusals_fail_over_and_certain_ones_are_raised(
    client: Client, cluster: FakeCluster
) -> None:
    write(cluster, "k")
    cluster.script(N1, 503)
    cluster.script(N2, httpx.ConnectError)
    with client.watch("k", start_revision=1) as watch:
        assert revisions(take(watch, 1)) == [1]
    assert [e for e, _ in watch_targets(cluster)] == [N1, N2, N3]
    cluster.script(N3, 400)
    with pytest.raises(BadRequest), client.watch("k") as watch:
        next(watch)
    cluster.script(N3, lambda r: httpx.Response(200, text="not a stream"))
    with pytest.raises(ServerError, match="unexpected answer"), client.watch("k") as watch:
        next(watch)


def test_a_compacted_resume_point_is_raised_not_skipped(
    client: Client, cluster: FakeCluster
) -> None:
    write(cluster, "k", "k", "k", "k")
    cluster.script(N1, lambda r: cluster.watch_stream(r, changes=1, then="break"))
    with client.watch("k", start_revision=1) as watch:
        assert revisions(take(watch, 1)) == [1]
        cluster.apply(encode_command(CompactCommand(3)))
        with pytest.raises(Compacted) as info:
            next(watch)
        assert info.value.compact_revision == 3
        with pytest.raises(StopIteration):
            next(watch)  # the watch is over
    assert watch_targets(cluster)[-1][1] == "/v1/watch?key=k&start_revision=2"


def test_giving_up_after_the_retry_policy(cluster: FakeCluster) -> None:
    policy = RetryPolicy(rounds=2, backoff=0, max_backoff=0, jitter=False)
    for endpoint in ENDPOINTS:
        cluster.script(endpoint, httpx.ConnectError, httpx.ConnectError)
    with (
        Client(list(ENDPOINTS), retry=policy, transport=cluster.mock_transport()) as client,
        pytest.raises(Unavailable, match="gave up after 6 tries"),
        client.watch("k") as watch,
    ):
        next(watch)


def test_a_stream_that_works_for_a_while_starts_a_new_count(cluster: FakeCluster) -> None:
    # Each stream delivers one revision then breaks: never more than one failure in a row.
    for endpoint in ENDPOINTS:
        for _ in range(4):
            cluster.script(endpoint, lambda r: cluster.watch_stream(r, changes=1, then="break"))
    write(cluster, *["k"] * 12)
    with (
        Client(list(ENDPOINTS), retry=NO_WAIT, transport=cluster.mock_transport()) as client,
        client.watch("k", start_revision=1) as watch,
    ):
        assert revisions(take(watch, 12)) == list(range(1, 13))


def test_streams_that_end_at_once_are_failures(cluster: FakeCluster) -> None:
    for endpoint in ENDPOINTS:  # the opening event, then the end: nothing served
        cluster.script(endpoint, *[lambda r: cluster.watch_stream(r, changes=0)] * 2)
    with (
        Client(list(ENDPOINTS), retry=NO_WAIT, transport=cluster.mock_transport()) as client,
        pytest.raises(Unavailable, match="ended"),
        client.watch("k") as watch,
    ):
        next(watch)


def test_a_closed_watch_is_over(client: Client, cluster: FakeCluster) -> None:
    write(cluster, "k")
    watch = client.watch("k", start_revision=1)
    assert revisions(take(watch, 1)) == [1]
    watch.close()
    assert list(watch) == []


def test_bad_arguments_send_nothing(client: Client, cluster: FakeCluster) -> None:
    with pytest.raises(ValueError, match="not both"):
        client.watch("k", prefix="k")
    with pytest.raises(ValueError, match="start_revision"):
        client.watch("k", start_revision=0)
    with pytest.raises(ValueError, match="empty"):
        client.watch("")
    assert cluster.seen == []


async def test_the_async_client_resumes_too(cluster: FakeCluster) -> None:
    write(cluster, *[f"k{i}" for i in range(4)])
    cluster.script(N1, lambda r: cluster.watch_stream(r, changes=2, then="error"))
    cluster.script(N2, lambda r: cluster.watch_stream(r, changes=1, then="break"))
    seen = []
    async with async_client(cluster) as client, client.watch(prefix="k", start_revision=1) as w:
        async for batch in w:
            seen.append(batch.revision)
            if len(seen) == 4:
                break
        assert w.next_revision == 5
    assert seen == [1, 2, 3, 4]
    assert [e for e, _ in watch_targets(cluster)] == [N1, N2, N3]
    async with async_client(cluster) as client:
        cluster.apply(encode_command(CompactCommand(2)))
        with pytest.raises(Compacted):
            async with client.watch("k0", start_revision=1) as w:
                await anext(w)


def test_the_event_stream_decoder() -> None:
    decoder = SSEDecoder()
    lines = [": a comment", "id: 3", "event: change", "data: {", "data:}", "", "", "data: x", ""]
    events = [e for line in lines if (e := decoder.feed(line)) is not None]
    assert events == [ServerSentEvent("change", "{\n}", "3"), ServerSentEvent("message", "x", "3")]
