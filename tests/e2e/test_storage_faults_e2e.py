"""A real raftkvd whose WAL's durable tail is damaged still starts and serves every key.

The fault: one node, 600 keys, ``--snapshot-count 200``, the WAL's last record is the
``SNAPSHOT`` record naming the newest snapshot (the older snapshot file is already deleted).
Truncating the newest segment anywhere in its last few KB used to leave the WAL naming the
deleted snapshot, and the node refused to start. Recovery now falls back to the newest
snapshot file, which holds everything the lost records did.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

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
