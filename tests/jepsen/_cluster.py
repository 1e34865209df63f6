"""raftkvd processes, one per network namespace, as the fault suite drives them.

Each node runs ``ip netns exec <ns> raftkvd ...`` (``ip`` execs, so the PID is raftkvd's), binds
its peer and client ports on its namespace address, keeps its data in its own directory and logs
to ``<results>/logs/raftkvd-<id>.log``. Every process is ended by its PID in ``close``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from e2e._procs import RAFTKVD
from jepsen._disk import mount_tmpfs, unmount
from jepsen._netns import Lab

PEER_PORT = 12379
CLIENT_PORT = 12380
SITE_DIR = Path(__file__).with_name("_site")  # the sync-tracking shim (see _powerloss)


@dataclass(frozen=True)
class Timing:
    """Raft timing of every node; the checks are stated in election timeouts."""

    tick_ms: int = 50
    election_ticks: int = 10
    request_timeout: float = 2.0

    @property
    def election_timeout(self) -> float:
        """Seconds: the upper end of the randomized timeout (ticks x tick, up to twice that)."""
        return 2 * self.election_ticks * self.tick_ms / 1000

    def flags(self) -> list[str]:
        return [
            "--tick-ms",
            str(self.tick_ms),
            "--election-ticks",
            str(self.election_ticks),
            "--request-timeout",
            str(self.request_timeout),
        ]


@dataclass
class Node:
    id: int
    address: str
    data_dir: Path
    log_path: Path
    args: list[str]
    prefix: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    removed: bool = False  # removed from the cluster; never started again
    exits: list[int] = field(default_factory=list)  # exit codes of its earlier processes

    @property
    def url(self) -> str:
        return f"http://{self.address}:{CLIENT_PORT}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.address}:{PEER_PORT}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        if self.alive():
            raise RuntimeError(f"node {self.id} is already running")
        if self.proc is not None and self.proc.returncode is not None:
            self.exits.append(self.proc.returncode)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, RAFTKVD, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill9(self) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGCONT)  # a paused process would not die until resumed
        self.signal(signal.SIGKILL)
        self.reap(10)

    def reap(self, timeout: float) -> int | None:
        """Wait for the process to exit (bounded); record and return its exit code."""
        if self.proc is None:
            return None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return code

    def status(self, timeout: float = 1.0) -> dict | None:
        try:
            with httpx.Client(trust_env=False, timeout=timeout) as http:
                r = http.get(self.url + "/-/status")
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def log_tail(self, chars: int = 1500) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text[-chars:]


class Cluster:
    """The nodes of one run; ids are never reused (a removed member's id stays taken)."""

    def __init__(
        self,
        lab: Lab,
        workdir: Path,
        logdir: Path,
        *,
        size: int,
        timing: Timing,
        extra_flags: list[str],
        sync_journal: bool,
        tmpfs: bool,
    ) -> None:
        self.lab, self.workdir, self.logdir, self.timing = lab, workdir, logdir, timing
        self.extra_flags = extra_flags
        self.sync_journal = sync_journal
        self.tmpfs = tmpfs
        self.nodes: dict[int, Node] = {}
        self.data_roots: dict[int, Path] = {}  # node id -> where its data dir lives
        for i in range(1, size + 1):
            self._make(i, join=False, founders=size)

    def _make(self, node_id: int, join: bool, founders: int) -> Node:
        self.lab.add_node(node_id)
        root = self.workdir
        if self.tmpfs:
            root = self.workdir / f"disk-{node_id}"
            mount_tmpfs(root)
            self.data_roots[node_id] = root
        data_dir = root / f"raftkv-{node_id}"
        count = node_id if join else founders
        cluster_arg = ",".join(
            f"http://{self.lab.address(i)}:{PEER_PORT}" for i in range(1, count + 1)
        )
        args = [
            "--id",
            str(node_id),
            "--cluster",
            cluster_arg,
            "--host",
            self.lab.address(node_id),
            "--port",
            str(CLIENT_PORT),
            "--data-dir",
            str(data_dir),
            "--cluster-token",
            self.lab.name,
            *self.timing.flags(),
            *self.extra_flags,
        ]
        if join:
            args.append("--join")
        env = dict(os.environ)
        for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env.pop(proxy, None)
        if self.sync_journal:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(SITE_DIR), env.get("PYTHONPATH", "")) if p
            )
            env["RAFTKV_TEST_SYNC_JOURNAL"] = str(self.journal(node_id))
        node = Node(
            node_id,
            self.lab.address(node_id),
            data_dir,
            self.logdir / f"raftkvd-{node_id}.log",
            args,
            self.lab.exec_prefix(node_id),
            env,
        )
        self.nodes[node_id] = node
        return node

    def journal(self, node_id: int) -> Path:
        return self.workdir / f"sync-{node_id}.journal"

    def add_joiner(self) -> Node:
        """A fresh node (a new id, a new namespace, an empty data dir), not yet started."""
        return self._make(max(self.nodes) + 1, join=True, founders=0)

    @property
    def members(self) -> list[Node]:
        return [n for n in self.nodes.values() if not n.removed]

    def start_all(self) -> None:
        for n in self.members:
            if not n.alive():
                n.start()

    def leader(self, timeout: float = 15.0) -> int:
        """The leader every live member agrees on (bounded wait)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [n for n in self.members if n.alive()]
            statuses = [n.status() for n in live]
            leaders = {s.get("leader") for s in statuses if s}
            if live and all(statuses) and len(leaders) == 1 and None not in leaders:
                return int(leaders.pop())
            time.sleep(0.05)
        raise AssertionError(f"no agreed leader within {timeout}s: {self.describe()}")

    def describe(self) -> str:
        parts = []
        for n in self.nodes.values():
            code = n.proc.returncode if n.proc is not None else None
            state = "removed" if n.removed else ("up" if n.alive() else f"down(exit {code})")
            parts.append(f"{n.id}:{state}")
        return " ".join(parts)

    def close(self) -> None:
        """End every process by its PID (resumed first if paused)."""
        for n in self.nodes.values():
            n.kill9()
        for root in self.data_roots.values():
            unmount(root)
