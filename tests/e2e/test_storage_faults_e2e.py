"""A real raftkvd whose WAL's durable tail is damaged still starts and serves every key.

The fault: one node, 600 keys, ``--snapshot-count 200``, the WAL's last record is the
``SNAPSHOT`` record naming the newest snapshot (the older snapshot file is already deleted).
Truncating the newest segment anywhere in its last few KB used to leave the WAL naming the
deleted snapshot, and the node refused to start. Recovery now falls back to the newest
snapshot file, which holds everything the lost records did.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from raftkv.storage._records import Frame, RecordType, decode_snapshot_record, leading_frames

from ._procs import Cluster, Daemon, wait_for

KEYS = 600
SNAPSHOT_COUNT = 200


def _records(segment: Path) -> list[Frame]:
    return leading_frames(segment.read_bytes())


def _snapshots_taken(d: Daemon) -> int:
    for line in d.get("/-/metrics").text.splitlines():
        if line.startswith("raftkv_snapshots_taken"):
            return int(float(line.split()[-1]))
    raise AssertionError("no raftkv_snapshots_taken metric")


def _write_until_a_snapshot_is_the_last_record(d: Daemon) -> int:
    """600 keys, then overwrites of one key until the next snapshot: its index."""
    with httpx.Client(base_url=d.url, timeout=10) as http:
        index = 0
        for k in range(KEYS):
            r = http.put(f"/key-{k}", content=f"value-{k}")
            assert r.status_code == 204, r.text
            index = int(r.headers["x-raft-index"])
        # Every entry applies on its own here, so snapshots land on multiples of 200: keep
        # overwriting key-0 (with its own value) up to the next one and write nothing after.
        while index % SNAPSHOT_COUNT:
            r = http.put("/key-0", content="value-0")
            assert r.status_code == 204, r.text
            index = int(r.headers["x-raft-index"])
    wait_for(lambda: _snapshots_taken(d) == index // SNAPSHOT_COUNT, what="the last snapshot")
    return index


def _wait_serving(d: Daemon) -> None:
    """Until the node leads (it is alone); fails at once, with its log, if it exits."""

    def serving() -> bool:
        assert d.alive(), f"raftkvd exited: {d.log_text()[-1500:]}"
        return (d.status() or {}).get("leader") == d.id

    wait_for(serving, what="the restarted node to lead")


def _check_all_keys(d: Daemon) -> None:
    with httpx.Client(base_url=d.url, timeout=10) as http:
        for k in range(KEYS):
            r = http.get(f"/key-{k}")
            assert (r.status_code, r.text) == (200, f"value-{k}"), (k, d.log_text()[-2000:])


def test_a_truncated_snapshot_record_at_the_tail_is_repaired(cluster_factory) -> None:
    c: Cluster = cluster_factory(1)
    d = c.daemons[1]
    d.args += ["--snapshot-count", str(SNAPSHOT_COUNT)]
    c.start_all()
    c.wait_leader()
    snapshot_index = _write_until_a_snapshot_is_the_last_record(d)
    assert d.stop() == 0
    raft = c.workdir / "raftkv-1" / "raft"
    segment = sorted(raft.glob("*.wal"))[-1]
    records = _records(segment)
    tail = records[-1]
    assert tail.type is RecordType.SNAPSHOT, "the WAL's last record must name the snapshot"
    ref = decode_snapshot_record(tail.payload)
    assert ref.index == snapshot_index
    assert [p.name for p in raft.glob("*.snap")] == [ref.name], "the older snapshot is gone"

    pristine = c.workdir / "pristine"
    shutil.copytree(c.workdir / "raftkv-1", pristine)
    # Inside the snapshot record, at its first bytes, and 3 KB back (whole batches lost too).
    for cut in (tail.end - 1, tail.offset + 3, max(tail.end - 3072, records[1].offset)):
        shutil.rmtree(c.workdir / "raftkv-1")
        shutil.copytree(pristine, c.workdir / "raftkv-1")
        with segment.open("r+b") as f:
            f.truncate(cut)
        d.start()
        _wait_serving(d)
        _check_all_keys(d)
        assert d.stop() == 0, d.log_text()[-2000:]
        log = d.log_text()
        assert "snapshot" in log and ref.name in log, "the repair is logged with what it did"


# -- small and full disks (root only: they mount a tmpfs) -----------------------------------------


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


@contextmanager
def _tmpfs(target: Path, size: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    r = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target))
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {r.stderr}")
    try:
        yield target
    finally:
        _run("umount", "-l", str(target))


def test_a_node_on_a_full_disk_stops_clearly_and_keeps_what_it_acknowledged(
    cluster_factory,
) -> None:
    """An 8 MiB disk: the node starts (the 64 MiB segment is not preallocated), takes writes of
    1 MiB until the disk is full, then exits 1 naming the file and the full disk; with room
    again it restarts with every acknowledged write."""
    c: Cluster = cluster_factory(1)
    d = c.daemons[1]
    with _tmpfs(c.workdir / "disk", "8m") as disk:
        d.args += ["--data-dir", str(disk / "node")]
        c.start_all()
        _wait_serving(d)
        acknowledged = []
        with httpx.Client(base_url=d.url, timeout=10) as http:
            for k in range(20):
                try:
                    r = http.put(f"/big-{k}", content=bytes([k]) * (1 << 20))
                except httpx.HTTPError:
                    break
                if r.status_code != 204:
                    break
                acknowledged.append(k)
        assert d.proc is not None
        assert d.proc.wait(30) == 1
        log = d.log_text()
        assert "Traceback" not in log
        last = log.strip().splitlines()[-1]
        assert last.startswith("raftkvd: error: storage:"), last
        assert "No space left on device (ENOSPC" in last and ".wal" in last, last
        assert 3 <= len(acknowledged) < 8, acknowledged
        assert _run("mount", "-o", "remount,size=64m", str(disk)).returncode == 0
        d.start()
        _wait_serving(d)
        with httpx.Client(base_url=d.url, timeout=10) as http:
            for k in acknowledged:
                r = http.get(f"/big-{k}")
                assert (r.status_code, r.content) == (200, bytes([k]) * (1 << 20)), k


def test_the_wal_segment_size_flag_sets_the_segment_size(cluster_factory) -> None:
    c: Cluster = cluster_factory(1)
    d = c.daemons[1]
    d.args += ["--wal-segment-size", "64KiB"]
    c.start_all()
    _wait_serving(d)
    with httpx.Client(base_url=d.url, timeout=10) as http:
        for k in range(40):
            assert http.put(f"/k{k}", content=b"v" * 4096).status_code == 204
    assert d.stop() == 0
    sizes = [p.stat().st_size for p in sorted((c.workdir / "raftkv-1" / "raft").glob("*.wal"))]
    assert len(sizes) >= 2 and all(s <= 64 << 10 for s in sizes), sizes
    assert sizes[-1] == 64 << 10  # the newest is preallocated to the segment size


def test_the_write_that_fills_the_disk_is_answered_507_not_cut_off(cluster_factory) -> None:
    """The write in flight when the disk fills gets a JSON 507 (its outcome is unknown), and
    every later one an answer or a refused connection, never one cut off mid-request."""
    c: Cluster = cluster_factory(1)
    d = c.daemons[1]
    with _tmpfs(c.workdir / "disk", "8m") as disk:
        d.args += ["--data-dir", str(disk / "node")]
        c.start_all()
        _wait_serving(d)
        answers = []
        fresh = httpx.Limits(max_keepalive_connections=0)  # refused, once it exits, not cut
        with httpx.Client(base_url=d.url, timeout=15, limits=fresh) as http:
            for k in range(20):
                try:
                    r = http.put(f"/big-{k}", content=bytes([k]) * (1 << 20))
                except httpx.ConnectError:
                    break  # the node has exited
                answers.append(r)
                if r.status_code != 204:
                    break
        assert d.proc is not None and d.proc.wait(30) == 1
        failed = answers[-1]
        assert failed.status_code == 507, [r.status_code for r in answers]
        assert failed.headers["content-type"] == "application/json"
        assert failed.json()["error"] == "storage failed"
        assert "No space left on device" in failed.json()["detail"]
