"""Backup and disaster recovery with real processes, as docs/operations.md describes it: load
100 000 keys into a three-node cluster, ``raftkv snapshot save`` from it while it serves,
``raftkv snapshot restore`` the file into the data directories of a new three-node cluster,
start that one, and find every key there, at the same revision, with the history after it
writable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from raftkv.client import AsyncClient, put

from ._procs import Cluster, wait_for

KEYS = 100_000
PER_TXN = 125  # puts in one transaction (the limit is 128 compares and operations)
RAFTKV = str(Path(sys.executable).with_name("raftkv"))


def _ctl(*argv: str, endpoints: str | None = None) -> subprocess.CompletedProcess[str]:
    options = [] if endpoints is None else ["--endpoints", endpoints]
    return subprocess.run(
        [RAFTKV, *options, *argv], capture_output=True, text=True, timeout=120, check=False
    )


async def _load(endpoints: list[str]) -> None:
    """Every key k000000..k099999 = v<i>, by transactions of PER_TXN puts, 8 at a time."""
    async with AsyncClient(endpoints) as kv:
        batches = iter(range(0, KEYS, PER_TXN))

        async def worker() -> None:
            for start in batches:
                ops = [put(b"k%06d" % i, b"v%d" % i) for i in range(start, start + PER_TXN)]
                assert (await kv.txn().then(*ops).commit()).succeeded

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(worker)


async def _count(endpoint: str) -> tuple[int, dict[bytes, bytes]]:
    """How many keys the endpoint has, and a sample of them."""
    async with AsyncClient(endpoint) as kv:
        total, after, sample = 0, None, {}
        while True:
            page = await kv.get_prefix(b"k", limit=5000, after=after)
            total += len(page.kvs)
            sample.update({kv.key: kv.value for kv in page.kvs[::997]})
            if not page.more:
                return total, sample
            after = page.kvs[-1].key


@pytest.mark.slow
def test_a_backup_of_100k_keys_restores_into_a_new_cluster(cluster_factory, tmp_path) -> None:
    old: Cluster = cluster_factory(3)
    old.start_all()
    old.wait_leader()
    urls = [d.url for d in old.daemons.values()]
    trio.run(_load, urls)
    before = old.daemons[1].status()
    assert before is not None and before["keys"] == KEYS

    backup = tmp_path / "backup.snap"
    saved = _ctl("-w", "json", "snapshot", "save", str(backup), endpoints=",".join(urls))
    assert saved.returncode == 0, saved.stderr
    info = json.loads(saved.stdout)
    assert info["keys"] == KEYS and info["revision"] >= before["revision"]
    status = _ctl("-w", "json", "snapshot", "status", str(backup))
    assert json.loads(status.stdout)["sha256"] == info["sha256"]
    old.teardown()  # the disaster: the old cluster is gone

    new = Cluster(tmp_path / "new", 3)  # new ports, new directories
    (tmp_path / "new").mkdir()
    for i in new.daemons:
        restored = _ctl(
            "snapshot",
            "restore",
            str(backup),
            "--data-dir",
            str(tmp_path / "new" / f"raftkv-{i}"),
            "--id",
            str(i),
            "--cluster",
            new.cluster_arg,
        )
        assert restored.returncode == 0, restored.stderr
    try:
        new.start_all()
        new.wait_leader(timeout=60)
        for d in new.daemons.values():
            wait_for(lambda d=d: (d.status() or {}).get("keys") == KEYS, 60, f"{d.id}'s keys")
        total, sample = trio.run(_count, new.daemons[2].url)
        assert total == KEYS
        assert all(value == b"v%d" % int(key[1:]) for key, value in sample.items())
        assert len(sample) > 90
        # Revisions go on from the backup's: the new cluster's history continues the old one.
        r = httpx.put(new.daemons[1].url + "/v1/kv/after", content=b"x", timeout=10)
        assert r.status_code in (200, 201), r.text
        assert r.json()["revision"] == info["revision"] + 1
    finally:
        new.teardown()
