"""raftkvd refuses bad input with one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ._procs import FAST, RAFTKVD, Cluster


def _run(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAFTKVD, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_bad_flags_exit_2_with_one_line(tmp_path: Path) -> None:
    for args in (
        ["--id", "4", "--cluster", "http://127.0.0.1:12379"],
        ["--id", "1", "--cluster", "not-a-url"],
        ["--port", "99999"],
        ["--tick-ms", "0"],
        ["--no-such-flag"],
    ):
        r = _run(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("raftkvd: error:"), r.stderr


def test_help_and_version(tmp_path: Path) -> None:
    r = _run("--help", cwd=tmp_path)
    assert r.returncode == 0 and "--cluster" in r.stdout and "RAFTKV_" in r.stdout
    r = _run("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip()


def test_another_nodes_data_directory_is_refused(cluster_factory, tmp_path: Path) -> None:
    c: Cluster = cluster_factory(1)
    c.start_all()
    c.wait_leader()
    d = c.daemons[1]
    assert d.stop() == 0
    r = _run(
        "--id",
        "2",
        "--cluster",
        f"{d.peer_url},http://127.0.0.1:2",
        "--port",
        "3",
        "--data-dir",
        str(c.workdir / "raftkv-1"),
        *FAST,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "belongs to node 1" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_busy_port_is_a_clear_error(cluster_factory, tmp_path: Path) -> None:
    c: Cluster = cluster_factory(1)
    c.start_all()
    c.wait_leader()
    d = c.daemons[1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = _run(
        "--id",
        "1",
        "--cluster",
        "http://127.0.0.1:1",
        "--port",
        str(d.client_port),
        *FAST,
        cwd=elsewhere,
        timeout=60,
    )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("raftkvd: error:"), r.stderr


def test_a_corrupt_wal_refuses_to_start_with_a_clear_error(cluster_factory) -> None:
    c: Cluster = cluster_factory(1)
    c.start_all()
    c.wait_leader()
    d = c.daemons[1]
    for k in range(50):
        assert d.put(f"/k{k}", "v" * 50).status_code == 204
    assert d.stop() == 0
    (segment,) = sorted((c.workdir / "raftkv-1" / "raft").glob("*.wal"))[:1]
    data = bytearray(segment.read_bytes())
    at = -1
    for _ in range(25):  # the 25th of 50 values: damage in the middle of the log
        at = data.index(b"v" * 50, at + 1)
    middle = at
    data[middle] ^= 0xFF
    segment.write_bytes(bytes(data))
    d.start()
    assert d.proc is not None
    code = d.proc.wait(30)
    log = d.log_text()
    assert code == 1, log[-2000:]
    assert "Traceback" not in log
    last = log.strip().splitlines()[-1]
    assert last.startswith("raftkvd: error: storage:") and "corrupt" in last.lower(), last
    assert segment.name in last


def test_a_busy_port_is_retried_until_it_frees(cluster_factory) -> None:
    """A port held a moment longer (a connection closed a moment ago, another process
    stopping) is retried with a clear line, and served once it is free."""
    import socket
    import time

    c: Cluster = cluster_factory(1)
    d = c.daemons[1]
    d.args[d.args.index("--bind-retry") + 1] = "20s"
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", d.client_port))
    holder.listen()
    try:
        d.start()
        deadline = time.monotonic() + 15
        while "busy, retrying" not in d.log_text():
            assert time.monotonic() < deadline, d.log_text()
            time.sleep(0.05)
    finally:
        holder.close()
    c.wait_leader()
    assert d.put("/k", "v").status_code == 204
    assert f"client port 127.0.0.1:{d.client_port} busy" in d.log_text()
