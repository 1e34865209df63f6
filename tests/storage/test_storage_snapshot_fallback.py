"""The snapshot fallback: a WAL whose durable tail named a newer snapshot lost that tail.

``save_snapshot`` deletes the previous snapshot file once the record naming the new one is
durable. If that record (the WAL's last) is damaged afterwards, recovery drops it like a torn
write and what is left names the deleted file. Recovery then adopts the newest snapshot file
if it verifies and is consistent with the WAL (``raftkv/storage/_snapfallback.py``), records
that in the WAL, and logs it; otherwise it refuses, naming the files there and what to do.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from storage_workload import end_with_local_snapshot

from raftkv import StorageMismatch
from raftkv.core import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftkv.storage import FileStorage, OsFileSystem, PersistedState
from raftkv.storage._records import Frame, RecordType, leading_frames
from raftkv.storage._snapfile import write_snapshot_file

CONF = ConfState((1,))


def E(index: int, term: int = 1) -> Entry:
    return Entry(term, index, data=b"value %d" % index)


def snap(index: int, term: int = 1) -> Snapshot:
    return Snapshot(SnapshotMetadata(index, term, CONF), b"state at %d" % index)


def _records(path: Path) -> list[Frame]:
    return leading_frames(path.read_bytes())


async def _node_like_directory(path: Path, n: int = 600, every: int = 200) -> PersistedState:
    """What a single node leaves: one entry per save, a snapshot every ``every`` entries (then
    compaction keeping a tail), the last record the ``SNAPSHOT`` record at ``n``."""
    async with await FileStorage.open(path, segment_bytes=16384) as storage:
        for i in range(1, n + 1):
            await storage.save(hard_state=HardState(2, 1, i), entries=[E(i, 2)], snapshot=None)
            if i % every == 0 and i < n:
                await storage.save_snapshot(snap(i, 2))
                await storage.compact(i - 50)
        return await end_with_local_snapshot(storage, data=b"state at %d" % n)


def _newest_segment(path: Path) -> Path:
    return max(path.glob("*.wal"))


def _last_record_end(path: Path) -> int:
    return _records(path)[-1].end


async def _open_load(path: Path) -> PersistedState:
    async with await FileStorage.open(path, segment_bytes=16384) as storage:
        return await storage.load()


@pytest.mark.parametrize("back", [1, 40, 87, 1000, 3072])
async def test_a_truncated_tail_naming_the_newest_snapshot_falls_back_to_it(
    tmp_path: Path, back: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The reported case: 600 entries, snapshots every 200, the segment cut in its last 3 KB."""
    caplog.set_level(logging.INFO, logger="raftkv.storage")
    expected = await _node_like_directory(tmp_path)
    segment = _newest_segment(tmp_path)
    tail = _records(segment)[-1]
    assert tail.type is RecordType.SNAPSHOT
    assert [p.name for p in tmp_path.glob("*.snap")] == [f"snap-{2:016x}-{600:016x}.snap"]
    with segment.open("r+b") as f:
        f.truncate(tail.end - back)

    state = await _open_load(tmp_path)
    assert state == expected  # nothing after the snapshot existed: nothing is lost
    assert "which is missing" in caplog.text and f"snap-{2:016x}-{600:016x}.snap" in caplog.text
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    # The repair is durable: opening again finds a WAL naming the snapshot, and logs nothing.
    caplog.clear()
    assert await _open_load(tmp_path) == expected
    assert "missing" not in caplog.text


async def test_entries_after_the_adopted_snapshot_stay(tmp_path: Path) -> None:
    async with await FileStorage.open(tmp_path) as storage:
        await storage.save(
            hard_state=HardState(1, 1, 6), entries=[E(i) for i in range(1, 9)], snapshot=None
        )
        await storage.save_snapshot(snap(3))
        await storage.save_snapshot(snap(6))
        expected = await storage.load()
    assert [e.index for e in expected.entries] == [7, 8]
    segment = _newest_segment(tmp_path)
    with segment.open("r+b") as f:
        f.truncate(_last_record_end(segment) - 2)
    assert await _open_load(tmp_path) == expected


def _orphan(path: Path, snapshot: Snapshot) -> None:
    """A snapshot file no record names (the record naming it was lost)."""
    write_snapshot_file(OsFileSystem(), str(path), snapshot)


async def _wal_naming_a_deleted_snapshot(
    path: Path, entries: list[Entry], hard_state: HardState, named: int
) -> None:
    async with await FileStorage.open(path) as storage:
        await storage.save(hard_state=hard_state, entries=entries, snapshot=None)
        await storage.save_snapshot(snap(named))
    (path / f"snap-{1:016x}-{named:016x}.snap").unlink()


async def test_a_log_conflicting_with_the_snapshot_after_the_commit_is_discarded(
    tmp_path: Path,
) -> None:
    """Entry 8 of term 1 in the WAL, uncommitted; the snapshot at 8 of term 2 committed it: the
    WAL's entry never was, so the log goes, as when a snapshot from the leader is installed."""
    await _wal_naming_a_deleted_snapshot(
        tmp_path, [E(i) for i in range(1, 11)], HardState(2, 2, 4), named=3
    )
    _orphan(tmp_path, snap(8, term=2))
    state = await _open_load(tmp_path)
    assert state == PersistedState(HardState(2, 2, 8), snap(8, term=2), [])


@pytest.mark.parametrize(
    ("newest", "hard_state", "match"),
    [
        (None, HardState(1, 1, 6), "no newer snapshot file exists"),
        (snap(2), HardState(1, 1, 6), "no newer snapshot file exists"),
        (snap(8, term=2), HardState(2, 1, 9), "committed entry 8 has term 1"),
        (snap(8, term=3), HardState(2, 1, 4), "term 3, beyond the hard state's term 2"),
    ],
)
async def test_no_fallback_is_refused_naming_the_files_and_what_to_do(
    tmp_path: Path, newest: Snapshot | None, hard_state: HardState, match: str
) -> None:
    await _wal_naming_a_deleted_snapshot(
        tmp_path, [E(i) for i in range(1, 11)], hard_state, named=5
    )
    if newest is not None:
        _orphan(tmp_path, newest)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(StorageMismatch, match=match) as info:
        await FileStorage.open(tmp_path)
    message = str(info.value)
    assert f"snap-{1:016x}-{5:016x}.snap (index 5) is named in the WAL but missing" in message
    if newest is not None:
        assert f"{os.path.basename(_name(newest))} (index " in message
    else:
        assert "Snapshot files in" in message and ": none." in message
    assert "Put the missing file back" in message and "add it back as a new member" in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing changed


def _name(s: Snapshot) -> str:
    return f"snap-{s.metadata.term:016x}-{s.metadata.index:016x}.snap"


async def test_a_damaged_newest_snapshot_file_is_refused(tmp_path: Path) -> None:
    await _wal_naming_a_deleted_snapshot(
        tmp_path, [E(i) for i in range(1, 11)], HardState(1, 1, 9), named=5
    )
    _orphan(tmp_path, snap(8))
    newest = tmp_path / _name(snap(8))
    data = bytearray(newest.read_bytes())
    data[-1] ^= 1
    newest.write_bytes(bytes(data))
    with pytest.raises(StorageMismatch, match=r"the newest one is damaged .*checksum mismatch"):
        await FileStorage.open(tmp_path)
