"""``GET /v1/watch`` in process, read as it streams: one event per revision that touched a
watched key, progress when idle, resuming with ``Last-Event-ID``, errors before the stream as
JSON, and a watch that ends early always ends with an error event naming where to resume."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from _nodes import Api, Event, open_api, open_cluster, stream

from raftkv.kv import Limits


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with open_api(Limits(max_key_bytes=64)) as api:
        yield api


async def put(api: Api, key: str, value: str = "v") -> int:
    r = await api.client.put(f"/v1/kv/{key}", content=value.encode())
    revision: int = r.json()["revision"]
    return revision


def keys(events: list[Event]) -> list[tuple[int, list[tuple[str, str]]]]:
    return [(e.id, [(x["type"], x["kv"]["key"]) for x in e.data["events"]]) for e in events]


async def test_the_stream_opens_with_a_progress_event_at_the_revision_before_it(api: Api) -> None:
    await put(api, "a")
    async with stream(api.app, "/v1/watch") as s:
        assert s.status == 200
        assert s.headers["content-type"] == "text/event-stream"
        assert s.headers["cache-control"] == "no-cache"
        assert "content-length" not in s.headers
        assert int(s.headers["x-raft-index"]) > 0
        assert await s.next_event() == Event(1, "progress", {"revision": 1})  # from now
        await put(api, "b")
        (change,) = await s.changes(1)
    assert change.id == 2 and change.data["revision"] == 2


async def test_history_then_live_in_order_only_what_is_watched(api: Api) -> None:
    await put(api, "a/1", "x")  # 1
    await put(api, "b/1")  # 2
    await put(api, "a/2", "y")  # 3
    async with stream(api.app, "/v1/watch", "prefix=a/&start_revision=1") as s:
        assert (await s.next_event()).id == 0
        first = await s.changes(2)
        await put(api, "b/2")  # 4
        await api.client.post(
            "/v1/txn",
            json={"success": [{"put": {"key": "a/3", "value": "z"}}, {"put": {"key": "b/3"}}]},
        )  # 5: wrong body, no revision
        await api.client.post(
            "/v1/txn",
            json={
                "success": [
                    {"put": {"key": "a/3", "value": "z"}},
                    {"put": {"key": "b/3", "value": "q"}},
                ]
            },
        )  # 5
        await api.client.delete("/v1/kv", params={"prefix": "a/"})  # 6
        rest = await s.changes(2)
    assert keys(first + rest) == [
        (1, [("put", "a/1")]),
        (3, [("put", "a/2")]),
        (5, [("put", "a/3")]),
        (6, [("delete", "a/1"), ("delete", "a/2"), ("delete", "a/3")]),
    ]
    assert first[0].data["events"][0]["kv"] == {
        "key": "a/1",
        "value": "x",
        "create_revision": 1,
        "mod_revision": 1,
        "version": 1,
    }
    assert all(e["kv"]["mod_revision"] == 6 for e in rest[1].data["events"])
    assert all("prev_kv" not in e for e in rest[1].data["events"])


async def test_a_key_and_every_key(api: Api) -> None:
    async with (
        stream(api.app, "/v1/watch", "key=k") as one,
        stream(api.app, "/v1/watch", "") as every,
    ):
        await put(api, "k")
        await put(api, "kk")
        await api.client.delete("/v1/kv/k")
        assert [e.id for e in await one.changes(2)] == [1, 3]
        assert [e.id for e in await every.changes(3)] == [1, 2, 3]


async def test_prev_kv(api: Api) -> None:
    await put(api, "k", "1")
    async with stream(api.app, "/v1/watch", "key=k&prev_kv=true&start_revision=1") as s:
        await put(api, "k", "2")
        await api.client.delete("/v1/kv/k")
        created, updated, deleted = await s.changes(3)
    assert "prev_kv" not in created.data["events"][0]
    assert updated.data["events"][0]["prev_kv"]["value"] == "1"
    assert deleted.data["events"][0]["prev_kv"]["value"] == "2"
    assert deleted.data["events"][0]["type"] == "delete"


async def test_bytes_keys_come_as_base64(api: Api) -> None:
    async with stream(api.app, "/v1/watch", "prefix=%FF") as s:
        await api.client.put("/v1/kv/%FF%FE", content=b"\xfe")
        (change,) = await s.changes(1)
    kv = change.data["events"][0]["kv"]
    assert (kv["key_b64"], kv["value_b64"]) == ("//4=", "/g==")


async def test_progress_when_idle_names_the_current_revision(api: Api) -> None:
    async with stream(api.app, "/v1/watch", "key=watched") as s:
        assert (await s.next_event()).data == {"revision": 0}
        for i in range(3):
            await put(api, f"other-{i}")
        # Nothing watched changed: progress events catch up with the store's revision.
        with trio.fail_after(5):
            while (e := await s.next_event()).id < 3:
                assert e.event == "progress"
        assert e == Event(3, "progress", {"revision": 3})
        await put(api, "watched")
        (change,) = await s.changes(1)
        assert change.id == 4
        assert await s.next_event() == Event(4, "progress", {"revision": 4})


async def test_last_event_id_resumes_right_after_it(api: Api) -> None:
    for i in range(1, 6):
        await put(api, "k", str(i))
    async with stream(
        api.app, "/v1/watch", "key=k&start_revision=1", [("Last-Event-ID", "3")]
    ) as s:
        assert await s.next_event() == Event(3, "progress", {"revision": 3})
        assert [e.id for e in await s.changes(2)] == [4, 5]
    async with stream(api.app, "/v1/watch", "", [("Last-Event-ID", "0")]) as s:
        assert [e.id for e in await s.changes(5)] == [1, 2, 3, 4, 5]


async def test_a_start_beyond_the_current_revision(api: Api) -> None:
    # A client resuming on a member that is behind the one it came from.
    await put(api, "k")
    async with stream(api.app, "/v1/watch", "start_revision=4") as s:
        assert await s.next_event() == Event(3, "progress", {"revision": 3})
        for _ in range(4):
            await put(api, "k")
        changes = await s.changes(2)
        assert [e.id for e in changes] == [4, 5]


@pytest.mark.parametrize(
    ("query", "headers", "error"),
    [
        ("key=a&prefix=a", [], "conflicting parameters"),
        ("key=", [], "invalid key"),
        ("key=" + "k" * 65, [], "invalid key"),
        ("prefix=" + "k" * 65, [], "invalid key"),
        ("start_revision=0", [], "bad start_revision"),
        ("start_revision=x", [], "bad start_revision"),
        ("start_revision=-1", [], "bad start_revision"),
        ("prev_kv=yes", [], "bad prev_kv"),
        ("", [("Last-Event-ID", "x")], "bad Last-Event-ID"),
        ("", [("Last-Event-ID", "-1")], "bad Last-Event-ID"),
        ("", [("Last-Event-ID", "")], "bad Last-Event-ID"),
        ("prefix=%zz", [], "bad query"),
    ],
)
async def test_bad_requests_are_400_before_the_stream(
    api: Api, query: str, headers: list[tuple[str, str]], error: str
) -> None:
    unchanged = api.unchanged()
    async with stream(api.app, "/v1/watch", query, headers) as s:
        await s.wait_ended()
        assert s.status == 400 and s.headers["content-type"] == "application/json"
        assert s.json()["error"] == error
    assert api.service.watches.stats.opened == 0
    unchanged()


async def test_other_methods_are_405(api: Api) -> None:
    for method in ("POST", "PUT", "DELETE", "HEAD"):
        r = await api.client.request(method, "/v1/watch")
        assert r.status_code == 405 and r.headers["allow"] == "GET"
        if method != "HEAD":
            assert r.json()["error"] == "method not allowed"


async def test_a_compacted_start_is_410_before_the_stream(api: Api) -> None:
    for _ in range(3):
        await put(api, "k")
    await api.client.post("/v1/compact", json={"revision": 2})
    for query, headers in (("start_revision=2", []), ("", [("Last-Event-ID", "1")])):
        async with stream(api.app, "/v1/watch", query, headers) as s:
            await s.wait_ended()
            assert s.status == 410
            assert s.json()["compact_revision"] == 2 and s.json()["error"] == "revision compacted"
    async with stream(api.app, "/v1/watch", "", [("Last-Event-ID", "2")]) as s:
        assert [e.id for e in await s.changes(1)] == [3]


async def test_a_client_going_away_releases_its_watcher(api: Api) -> None:
    stats = api.service.watches.stats
    async with stream(api.app, "/v1/watch", "prefix=a") as s:
        await s.next_event()
        assert stats.open == 1
        s.leave()
        await s.wait_ended()
    assert stats.open == 0
    assert not s.body.endswith(b"\n\n" + b"event: error")  # no error event to a gone client


async def test_many_watchers_on_one_node(api: Api) -> None:
    stats = api.service.watches.stats
    async with trio.open_nursery() as nursery:
        seen: dict[int, list[int]] = {}

        async def watcher(i: int, task_status: trio.TaskStatus[None]) -> None:
            query = "prefix=k" if i % 2 else ""
            async with stream(api.app, "/v1/watch", query) as s:
                await s.next_event()
                task_status.started()
                seen[i] = [e.id for e in await s.changes(20)]

        for i in range(50):
            await nursery.start(watcher, i)
        assert stats.open == 50
        for _ in range(20):
            await put(api, "k")
    assert all(ids == list(range(1, 21)) for ids in seen.values())
    assert stats.open == 0 and stats.opened == 50


async def test_a_stopping_node_ends_every_stream_with_where_to_resume(api: Api) -> None:
    await put(api, "k")
    async with (
        stream(api.app, "/v1/watch", "key=k&start_revision=1") as s,
        stream(api.app, "/v1/watch", "key=other") as idle,
    ):
        assert [e.id for e in await s.changes(1)] == [1]
        opening = await idle.next_event()
        api.close()
        (error,) = [e for e in await s.events_until("error") if e.event == "error"]
        await s.wait_ended()
        events = [opening, *await idle.events_until("error")]
        await idle.wait_ended()
    assert error == Event(1, "error", {"error": "the node is stopping", "resume_revision": 2})
    assert events[-1].data == {"error": "the node is stopping", "resume_revision": 2}
    # A stream that sent progress resumes after it, never before.
    assert events[-1].id >= max(e.id for e in events[:-1])
    assert api.service.watches.stats.open == 0


async def test_a_slow_consumer_gets_an_error_event_and_resumes_without_a_gap() -> None:
    async with open_api(watch_buffer=4) as api:
        async with stream(api.app, "/v1/watch", "prefix=k", buffer=0) as s:
            assert (await s.next_event()).event == "progress"  # caught up: live
            for i in range(20):
                await put(api, f"k{i}")
            events = await s.events_until("error")
            await s.wait_ended()
        changes = [e.id for e in events if e.event == "change"]
        error = events[-1]
        assert error.data["error"] == "watcher fell behind"
        resume = error.data["resume_revision"]
        assert changes == list(range(1, resume))  # what was queued came first, in order
        assert error.id == resume - 1
        assert api.service.watches.stats.fell_behind == 1
        async with stream(
            api.app, "/v1/watch", "prefix=k", [("Last-Event-ID", str(error.id))]
        ) as s:
            changes += [e.id for e in await s.changes(20 - len(changes))]
        assert changes == list(range(1, 21))


async def test_a_compaction_past_a_lagging_watcher_ends_it_then_410() -> None:
    async with open_api(watch_buffer=100) as api:
        async with stream(api.app, "/v1/watch", "prefix=k", buffer=0) as s:
            await s.next_event()
            for _ in range(5):
                await put(api, "k")
            await api.client.post("/v1/compact", json={"revision": 4})
            events = await s.events_until("error")
        error = events[-1].data
        assert "compacted" in error["error"]
        async with stream(api.app, "/v1/watch", f"start_revision={error['resume_revision']}") as s:
            await s.wait_ended()
            assert s.status == 410 and s.json()["compact_revision"] == 4


async def test_every_member_streams_the_same_events_in_the_same_order() -> None:
    async with (
        open_cluster(3) as apis,
        stream(apis[0].app, "/v1/watch", "start_revision=1") as s1,
        stream(apis[1].app, "/v1/watch", "start_revision=1") as s2,
        stream(apis[2].app, "/v1/watch", "start_revision=1") as s3,
    ):
        for i in range(30):
            api = apis[i % 3]
            if i % 5 == 4:
                await api.client.delete("/v1/kv", params={"prefix": "k"})
            else:
                await put(api, f"k{i % 4}", str(i))
        streams = [[e.data for e in await s.changes(30)] for s in (s1, s2, s3)]
    assert streams[0] == streams[1] == streams[2]
    assert [d["revision"] for d in streams[0]] == list(range(1, 31))


async def test_a_removed_member_ends_its_streams() -> None:
    async with open_cluster(3) as apis:
        leader = apis[0].node.status().leader
        victim = next(a for a in apis if a.node.id != leader)
        await put(victim, "k")
        async with stream(victim.app, "/v1/watch", "start_revision=1") as s:
            assert [e.id for e in await s.changes(1)] == [1]
            r = await apis[leader - 1].client.delete(f"/v1/members/{victim.node.id}")
            assert r.status_code == 200
            events = await s.events_until("error", timeout=10)
            await s.wait_ended()
        assert events[-1].data == {
            "error": "this node was removed from the cluster",
            "resume_revision": events[-1].id + 1,
        }
        assert events[-1].data["resume_revision"] >= 2
        async with stream(victim.app, "/v1/watch", "start_revision=2") as s:
            await s.wait_ended()
            assert s.status == 503 and s.json()["error"] == "removed"
