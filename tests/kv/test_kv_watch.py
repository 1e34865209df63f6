"""Watchers of one store: every revision that touched a watched key exactly once, in order,
from history and live; a slow consumer, a compaction or a stop ends a watch with the revision
to resume from, and resuming there misses nothing."""

from __future__ import annotations

import pytest
import trio

from raftkv.kv import (
    CompactCommand,
    Compacted,
    DeleteCommand,
    DeletePrefixCommand,
    KVStateMachine,
    PutCommand,
    TxnCommand,
    WatchBatch,
    WatchHub,
    WatchLost,
    encode_command,
)


class Store:
    def __init__(self) -> None:
        self.kv = KVStateMachine()
        self.index = 0

    def apply(self, command: object) -> object:
        self.index += 1
        return self.kv.apply(self.index, encode_command(command))  # type: ignore[arg-type]

    def put(self, key: bytes, value: bytes = b"v") -> None:
        self.apply(PutCommand(key, value))


def _summary(batches: list[WatchBatch]) -> list[tuple[int, list[tuple[str, bytes, bytes]]]]:
    return [(b.revision, [(e.type, e.kv.key, e.kv.value) for e in b.events]) for b in batches]


async def _take(watcher, n: int) -> list[WatchBatch]:
    out = []
    with trio.fail_after(5):
        for _ in range(n):
            out.append(await watcher.next(None))
    return out


async def test_history_then_live_exactly_once_in_order() -> None:
    s = Store()
    hub = WatchHub(s.kv)
    s.put(b"a/1", b"x")  # 1
    s.put(b"b/1")  # 2: not watched
    s.put(b"a/2", b"y")  # 3
    async with hub.watch(prefix=b"a/", start_revision=1) as w:
        first = await _take(w, 2)
        s.apply(TxnCommand(success=(PutCommand(b"a/3", b"z"), PutCommand(b"b/2", b"q"))))  # 4
        s.apply(DeletePrefixCommand(b"a/"))  # 5
        rest = await _take(w, 2)
    assert _summary(first + rest) == [
        (1, [("put", b"a/1", b"x")]),
        (3, [("put", b"a/2", b"y")]),
        (4, [("put", b"a/3", b"z")]),
        (5, [("delete", b"a/1", b""), ("delete", b"a/2", b""), ("delete", b"a/3", b"")]),
    ]
    assert rest[1].events[0].kv.mod_revision == 5


async def test_key_and_every_key_watches() -> None:
    s = Store()
    hub = WatchHub(s.kv)
    async with hub.watch(key=b"k", start_revision=1) as one, hub.watch(start_revision=1) as all_:
        s.put(b"k")
        s.put(b"kk")
        s.apply(DeleteCommand(b"k"))
        assert [b.revision for b in await _take(one, 2)] == [1, 3]
        assert [b.revision for b in await _take(all_, 3)] == [1, 2, 3]


async def test_prev_kv() -> None:
    s = Store()
    hub = WatchHub(s.kv)
    s.put(b"k", b"1")
    async with hub.watch(key=b"k", start_revision=2, prev_kv=True) as w:
        s.put(b"k", b"2")
        s.apply(DeleteCommand(b"k"))
        put, delete = await _take(w, 2)
    assert put.events[0].prev_kv is not None and put.events[0].prev_kv.value == b"1"
    assert delete.events[0].prev_kv is not None and delete.events[0].prev_kv.value == b"2"


async def test_idle_watch_times_out_with_none() -> None:
    s = Store()
    hub = WatchHub(s.kv)
    async with hub.watch(start_revision=1) as w:
        assert await w.next(0.01) is None


async def test_a_slow_watcher_is_dropped_and_resumes_without_a_gap() -> None:
    s = Store()
    hub = WatchHub(s.kv, buffer=3)
    seen: list[int] = []
    async with hub.watch(start_revision=1) as w:
        assert await w.next(0) is None  # caught up: live now
        for i in range(10):
            s.put(b"k%d" % i)
        with pytest.raises(WatchLost) as info:
            while True:
                batch = await w.next(0)
                assert batch is not None
                seen.append(batch.revision)
    assert info.value.reason == "watcher fell behind"
    assert hub.stats.fell_behind == 1
    resume = info.value.resume_revision
    assert seen == [1, 2, 3] and resume == 4  # what was queued is delivered first
    async with hub.watch(start_revision=resume) as w:
        seen += [b.revision for b in await _take(w, 10 - len(seen))]
    assert seen == list(range(1, 11))


async def test_compaction_ends_a_lagging_watch_and_refuses_compacted_starts() -> None:
    s = Store()
    hub = WatchHub(s.kv, buffer=100)
    async with hub.watch(start_revision=1) as w:
        assert await w.next(0) is None
        for i in range(5):
            s.put(b"k%d" % i)
        s.apply(CompactCommand(3))
        with pytest.raises(WatchLost) as info:
            await w.next(0)
    assert info.value.resume_revision == 1
    with pytest.raises(Compacted) as compacted:
        async with hub.watch(start_revision=3):
            pass  # pragma: no cover
    assert compacted.value.compact_revision == 3
    async with hub.watch(start_revision=4) as w:
        assert [b.revision for b in await _take(w, 2)] == [4, 5]


async def test_a_restored_snapshot_resyncs_live_watchers() -> None:
    leader, follower = Store(), Store()
    hub = WatchHub(follower.kv)
    for store in (leader, follower):
        store.put(b"a")
    async with hub.watch(start_revision=1) as w:
        assert [b.revision for b in await _take(w, 1)] == [1]
        for i in range(4):
            leader.put(b"b%d" % i)
        follower.kv.restore(leader.kv.snapshot())  # the follower jumps to revision 5
        assert [b.revision for b in await _take(w, 4)] == [2, 3, 4, 5]
        follower.index = leader.index
        follower.put(b"c")
        assert [b.revision for b in await _take(w, 1)] == [6]


async def test_close_ends_every_watch_with_its_resume_revision() -> None:
    s = Store()
    hub = WatchHub(s.kv)
    s.put(b"a")
    async with hub.watch(start_revision=1) as w:
        await _take(w, 1)
        assert await w.next(0) is None  # caught up: live now
        s.put(b"b")
        hub.close("the node is stopping")
        assert [b.revision for b in await _take(w, 1)] == [2]  # queued before the close
        with pytest.raises(WatchLost) as info:
            await w.next(None)
    assert info.value.resume_revision == 3 and "stopping" in info.value.reason
    assert hub.stats.open == 0


async def test_a_start_in_the_future_hands_over_nothing_before_it() -> None:
    s = Store()
    hub = WatchHub(s.kv)
    s.put(b"a")
    async with hub.watch(start_revision=4) as w:  # a member that is behind: revision 1 now
        assert await w.next(0) is None
        for k in (b"b", b"c", b"d", b"e"):
            s.put(k)  # revisions 2..5
        assert [b.revision for b in await _take(w, 2)] == [4, 5]
