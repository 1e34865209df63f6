"""Real ``raftkvd`` processes for end-to-end tests: start, wait, kill -9, stop, restart.

Every process is started by the test and ended by its PID at teardown. Waiting is polling a
condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

RAFTKVD = str(Path(sys.executable).with_name("raftkvd"))
FAST = ["--tick-ms", "20", "--election-ticks", "10", "--request-timeout", "3", "--bind-retry", "2s"]


def free_ports(n: int) -> list[int]:
    """Ports that were free a moment ago (bound then released), all distinct."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Daemon:
    id: int
    peer_port: int
    client_port: int
    workdir: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self) -> None:
        log = (self.workdir / f"raftkvd-{self.id}.log").open("ab")
        self.proc = subprocess.Popen(
            [RAFTKVD, *self.args],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout)

    def get(self, path: str, **kw: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kw)  # type: ignore[arg-type]

    def put(self, path: str, data: bytes | str, **kw: object) -> httpx.Response:
        return httpx.put(self.url + path, content=data, timeout=10, **kw)  # type: ignore[arg-type]

    def status(self) -> dict | None:
        try:
            r = httpx.get(self.url + "/-/status", timeout=2)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def log_text(self) -> str:
        path = self.workdir / f"raftkvd-{self.id}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Cluster:
    def __init__(self, workdir: Path, n: int) -> None:
        self.workdir = workdir
        ports = free_ports(2 * n + 2)
        self.spare_ports = ports[2 * n :]
        self.daemons: dict[int, Daemon] = {}
        peers = [f"http://127.0.0.1:{ports[2 * i]}" for i in range(n)]
        self.cluster_arg = ",".join(peers)
        for i in range(1, n + 1):
            d = Daemon(i, ports[2 * i - 2], ports[2 * i - 1], workdir)
            d.args = [
                "--id",
                str(i),
                "--cluster",
                self.cluster_arg,
                "--port",
                str(d.client_port),
                *FAST,
            ]
            self.daemons[i] = d

    def start_all(self) -> None:
        for d in self.daemons.values():
            d.start()

    def wait_leader(self, among: list[int] | None = None, timeout: float = 20) -> int:
        ids = among or [i for i, d in self.daemons.items() if d.alive()]
        found: list[int] = []

        def agreed() -> bool:
            statuses = [self.daemons[i].status() for i in ids]
            leaders = {s["leader"] for s in statuses if s}
            if len(leaders) == 1 and leaders <= set(ids) and all(statuses):
                found.append(leaders.pop())
                return True
            return False

        wait_for(agreed, timeout, "an agreed leader")
        return found[-1]

    def teardown(self) -> None:
        for d in self.daemons.values():
            if d.alive():
                assert d.proc is not None
                d.proc.kill()
                d.proc.wait(10)
