"""Leases, locks and elections with real processes: three raftkvd, and the ``raftkv`` CLI.

Eight shells run ``raftkv lock`` at once: their commands never overlap and their fencing tokens
grow. A ``raftkv elect`` leader stopped (SIGSTOP) past its TTL is replaced, and when it resumes
it learns that it lost leadership: it says so and exits 1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ._procs import Cluster, wait_for

RAFTKV = str(Path(sys.executable).with_name("raftkv"))
TTL = 2  # seconds; these nodes' election timeout is 0.2 s (minimum TTL 1 s)


def _ctl(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    endpoints = ",".join(d.url for d in cluster.daemons.values())
    return subprocess.run(
        [RAFTKV, "--endpoints", endpoints, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _start(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    endpoints = ",".join(d.url for d in cluster.daemons.values())
    return subprocess.Popen(
        [RAFTKV, "--endpoints", endpoints, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_lease_commands(cluster_factory) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.start_all()
    cluster.wait_leader()
    granted = _ctl(cluster, "lease", "grant", "30")
    assert granted.returncode == 0, granted.stderr
    lease = granted.stdout.strip()
    assert _ctl(cluster, "put", "svc/a", "up", "--lease", lease).returncode == 0
    assert _ctl(cluster, "lease", "list").stdout.split() == [lease]
    assert _ctl(cluster, "lease", "keepalive", lease, "--once").stdout == "30\n"
    status = json.loads(_ctl(cluster, "lease", "ttl", lease, "--keys").stdout)
    assert status["granted_ttl"] == 30 and status["keys"] == [{"key": "svc/a"}]
    assert _ctl(cluster, "lease", "revoke", lease).stdout == "1\n"
    assert _ctl(cluster, "get", "svc/a").returncode == 1
    gone = _ctl(cluster, "lease", "keepalive", lease)
    assert gone.returncode == 1 and "lease not found" in gone.stderr
    bad = _ctl(cluster, "lease", "grant", "0")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_eight_shells_never_hold_the_lock_at_once(cluster_factory, tmp_path: Path) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.start_all()
    cluster.wait_leader()
    log = tmp_path / "tenures.txt"
    script = (
        f'echo "start $RAFTKV_LOCK_TOKEN" >> {log}; sleep 0.1; '
        f'echo "end $RAFTKV_LOCK_TOKEN" >> {log}'
    )
    procs = [
        _start(cluster, "lock", "jobs/x", "--ttl", str(TTL), "--", "sh", "-c", script)
        for _ in range(8)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) == 16, lines
    tokens = []
    for start, end in zip(lines[::2], lines[1::2], strict=True):
        kind, token = start.split()
        assert (kind, end) == ("start", f"end {token}"), lines  # no overlap
        tokens.append(int(token))
    assert tokens == sorted(tokens) and len(set(tokens)) == 8, tokens
    # Released: nothing left under the lock's name, no lease left.
    assert _ctl(cluster, "ls", "jobs/x/").stdout == ""
    assert _ctl(cluster, "lease", "list").stdout == ""


def test_the_lock_passes_the_exit_status_on(cluster_factory) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.start_all()
    cluster.wait_leader()
    assert _ctl(cluster, "lock", "l", "--", "sh", "-c", "exit 7").returncode == 7
    missing = _ctl(cluster, "lock", "l")
    assert missing.returncode == 2 and "no command" in missing.stderr


def test_a_leader_paused_past_its_ttl_is_replaced_and_learns_it(cluster_factory) -> None:
    cluster: Cluster = cluster_factory(3)
    cluster.start_all()
    cluster.wait_leader()
    first = _start(cluster, "elect", "svc/primary", "A", "--ttl", str(TTL))
    second = listener = None
    try:
        assert first.stdout is not None
        key = first.stdout.readline().strip()
        assert key.startswith("svc/primary/") and first.stdout.readline() == "A\n"
        listener = _start(cluster, "elect", "--listen", "svc/primary")
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == key and listener.stdout.readline() == "A\n"
        second = _start(cluster, "elect", "svc/primary", "B", "--ttl", str(TTL))
        os.kill(first.pid, signal.SIGSTOP)
        assert second.stdout is not None
        second.stdout.readline()
        assert second.stdout.readline() == "B\n"  # elected once A's lease expired
        listener.stdout.readline()
        assert listener.stdout.readline() == "B\n"
        listener.send_signal(signal.SIGINT)
        listener.communicate(timeout=10)
        assert listener.returncode == 130
        time.sleep(0.2)  # (A stays stopped a moment longer than it took B to win)
        os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=30)
        assert first.returncode == 1 and "leadership lost" in err, err
        assert second.poll() is None  # B still leads
        leaders = _ctl(cluster, "ls", "svc/primary/", "--values").stdout.splitlines()
        assert len(leaders) == 1 and leaders[0].endswith("\tB")
        second.send_signal(signal.SIGINT)
        second.communicate(timeout=10)
        assert second.returncode == 130
        wait_for(lambda: _ctl(cluster, "ls", "svc/primary/").stdout == "", what="resigned")
    finally:
        for p in (first, second, listener):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.communicate(timeout=10)
