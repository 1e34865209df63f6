"""Automatic compaction: the leader keeps the history bounded through the log."""

from __future__ import annotations

import pytest
import trio

from raftkv.kv import AutoCompaction, KVService, Retention, parse_retention


async def _wait(predicate, seconds: float = 30) -> None:
    with trio.fail_after(seconds):
        while not predicate():
            await trio.sleep(0.05)


async def test_by_revisions_kept(autojump_clock, kv_service: KVService) -> None:
    kv = kv_service
    async with trio.open_nursery() as nursery:
        await nursery.start(AutoCompaction(kv, Retention(revisions=10), interval=0.1).run)
        store = kv.store
        for i in range(30):
            await kv.put(b"k%d" % (i % 3), b"v")
        await _wait(lambda: store.retained_revisions <= 11)
        assert store.retained_revisions >= 10
        assert store.get(b"k0", revision=store.compact_revision) is not None
        compacted = store.compact_revision
        await kv.put(b"k", b"v")  # within the slack: nothing more to do
        await trio.sleep(1)
        assert store.compact_revision == compacted
        nursery.cancel_scope.cancel()


async def test_by_age(autojump_clock, kv_service: KVService) -> None:
    kv = kv_service
    async with trio.open_nursery() as nursery:
        await nursery.start(AutoCompaction(kv, Retention(None, seconds=5), interval=0.5).run)
        for _ in range(3):
            await kv.put(b"old", b"v")
        await trio.sleep(2)
        old = kv.store.revision
        await kv.put(b"new", b"v")
        await _wait(lambda: kv.store.compact_revision >= old, seconds=10)
        assert kv.store.compact_revision <= old + 1  # what is younger than 5 s is kept
        nursery.cancel_scope.cancel()


def test_parse_retention() -> None:
    assert parse_retention("10000") == Retention(10000)
    assert parse_retention("0") == Retention(None)
    assert parse_retention("90s") == Retention(None, 90)
    assert parse_retention("30m") == Retention(None, 1800)
    assert parse_retention("1h") == Retention(None, 3600)
    assert parse_retention("1.5d") == Retention(None, 129600)
    for bad in ("", "1x", "h", "-1h", "0s", "abc"):
        with pytest.raises(ValueError):
            parse_retention(bad)
