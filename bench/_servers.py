"""The servers the benchmarks run: raftkvd and etcd clusters on loopback, and what each process
costs (CPU time and resident memory, from /proc).

Every process is started here, bound to 127.0.0.1, and stopped by its PID (``stop``, also on
errors: the clusters are context managers).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("RAFTKV_SHARED_BENCH", HERE.parent.parent / "shared" / "bench"))
RAFTKVD = str(Path(sys.executable).with_name("raftkvd"))
PROBE = HERE / "probe"
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def _status_bytes(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` now (VmRSS)."""
    return _status_bytes(pid, "VmRSS")


def peak_rss_bytes(pid: int) -> int:
    """The highest resident memory of process ``pid`` so far (VmHWM)."""
    return _status_bytes(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    """Start VmHWM afresh from the current RSS (Linux: write 5 to clear_refs)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")


def stop_pids(procs: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


@dataclass
class RaftkvCluster:
    """Three (or ``n``) raftkvd on loopback, data under ``workdir``, the probe loaded in each."""

    workdir: Path
    n: int = 3
    extra: list[str] = field(default_factory=list)
    # Another checkout's code to run (to measure "before"): its directory goes first on the path.
    code: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    peers: list[int] = field(default_factory=list)
    clients: list[int] = field(default_factory=list)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.peers = [free_port() for _ in range(self.n)]
        self.clients = [free_port() for _ in range(self.n)]
        (self.workdir / "probe").mkdir(parents=True, exist_ok=True)

    @property
    def cluster(self) -> str:
        # By position (member i: the i-th URL), removed members' too, as raftkvd's --cluster.
        return ",".join(self.peer_url(i) for i in range(1, len(self.peers) + 1))

    def peer_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.peers[i - 1]}"

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.clients[i - 1]}"

    def data_dir(self, i: int) -> Path:
        return self.workdir / f"data-{i}"

    def start(self, i: int, *, join: bool = False) -> subprocess.Popen[bytes]:
        cmd = [RAFTKVD] if self.code is None else [sys.executable, "-m", "raftkv_cli"]
        cmd += ["--id", str(i), "--cluster", self.cluster, "--port"]
        cmd += [str(self.clients[i - 1]), "--data-dir", str(self.data_dir(i))]
        cmd += ["--log-level", "warning", *self.extra, *(["--join"] if join else [])]
        path = [str(PROBE)] if self.code is None else [str(self.code), str(PROBE)]
        env = {**os.environ, **self.env, "PYTHONPATH": os.pathsep.join(path)}
        env["RAFTKV_PROBE_DIR"] = str(self.workdir / "probe")
        log = (self.workdir / f"raftkvd-{i}.log").open("ab")
        self.procs[i] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        return self.procs[i]

    def start_all(self) -> None:
        for i in range(1, self.n + 1):
            self.start(i)
        self.leader_url()

    def stop(self, i: int) -> None:
        stop_pids([self.procs.pop(i)])

    def stop_all(self) -> None:
        stop_pids(list(self.procs.values()))
        self.procs.clear()

    def wipe(self, i: int) -> None:
        shutil.rmtree(self.data_dir(i), ignore_errors=True)

    def replace(self, i: int, leader: int) -> int:
        """Replace stopped member ``i`` as etcd's docs say a member that lost its data must be:
        remove it, add a new member (a new id: ids are never reused), start that one empty with
        ``--join``. The new member's id."""
        self.wipe(i)
        httpx.delete(f"{self.url(leader)}/{i}", timeout=30).raise_for_status()
        self.peers.append(free_port())
        self.clients.append(free_port())
        new = len(self.peers)
        added = httpx.post(f"{self.url(leader)}/{new}", content=self.peer_url(new), timeout=30)
        added.raise_for_status()
        self.start(new, join=True)
        return new

    def status(self, i: int) -> dict[str, object]:
        return dict(httpx.get(self.url(i) + "/-/status", timeout=2).json())

    def leader(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in self.procs:
                with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                    leader = self.status(i)["leader"]
                    if isinstance(leader, int) and leader in self.procs:
                        return leader
            time.sleep(0.1)
        raise RuntimeError("the raftkvd cluster elected no leader")

    def leader_url(self) -> str:
        return self.url(self.leader())

    def has_keys(self, i: int, count: int) -> Callable[[], bool]:
        """A check that node ``i`` holds at least ``count`` keys (for ``preload``)."""

        def check() -> bool:
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError, TypeError):
                return int(self.status(i)["keys"]) >= count  # type: ignore[call-overload]
            return False

        return check

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values()]

    def probes(self) -> list[dict[str, object]]:
        """What the probe of every process that exited wrote (see bench/probe)."""
        out = []
        for path in sorted((self.workdir / "probe").glob("probe-*.json")):
            with contextlib.suppress(ValueError, OSError):
                out.append(json.loads(path.read_text()))
        return out

    def __enter__(self) -> RaftkvCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


# The members shared/bench/etcd_cluster.sh starts: name -> (client port, peer port).
ETCD_MEMBERS = {"n1": (2379, 2380), "n2": (22379, 22380), "n3": (32379, 32380)}


@dataclass
class EtcdCluster:
    """etcd 3.4 on loopback (``shared/bench/etcd_cluster.sh``; ports 2379/22379/32379), its
    data, logs and PID files under ``base`` (the script's ``ETCD_BENCH_DIR``). A member can be
    stopped and started again here, with the script's flags (``stop_member``,
    ``start_member``), or replaced by a new, empty one (``replace_member``)."""

    base: Path
    script: Path = SHARED / "etcd_cluster.sh"
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _run(self, *args: str, check: bool = True) -> str:
        env = {**os.environ, "ETCD_BENCH_DIR": str(self.base)}
        done = subprocess.run(
            [self.script, *args], capture_output=True, text=True, check=check, env=env
        )
        return done.stdout

    def start_all(self) -> None:
        self._run("start", "cluster")

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop_member(name)
        self._run("stop", check=False)

    def leader_url(self) -> str:
        roles = self._run("roles")
        return next(line.split()[0] for line in roles.splitlines() if "leader" in line)

    def follower_name(self) -> str:
        roles = self._run("roles")
        url = next(line.split()[0] for line in roles.splitlines() if "leader" not in line)
        return next(n for n in ETCD_MEMBERS if self.url(n) == url)

    @staticmethod
    def url(name: str) -> str:
        return f"http://127.0.0.1:{ETCD_MEMBERS[name][0]}"

    def pid_of(self, name: str) -> int | None:
        with contextlib.suppress(ValueError, OSError):
            pid = int((self.base / f"{name}.pid").read_text())
            if Path(f"/proc/{pid}").exists():
                return pid
        return None

    def pids(self) -> list[int]:
        return [pid for n in ETCD_MEMBERS if (pid := self.pid_of(n)) is not None]

    def stop_member(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            stop_pids([proc])
        elif (pid := self.pid_of(name)) is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        (self.base / f"{name}.pid").unlink(missing_ok=True)

    def start_member(self, name: str, state: str = "new") -> None:
        """Start member ``name`` as the script does (``state`` existing: joining a cluster)."""
        peer = ETCD_MEMBERS[name][1]
        initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, (_, p) in ETCD_MEMBERS.items())
        cmd = ["etcd", "--name", name, "--data-dir", str(self.base / name / "data")]
        cmd += ["--listen-client-urls", self.url(name), "--advertise-client-urls", self.url(name)]
        cmd += ["--listen-peer-urls", f"http://127.0.0.1:{peer}"]
        cmd += ["--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}"]
        cmd += ["--initial-cluster", initial, "--initial-cluster-token", "raftkv-bench"]
        cmd += ["--initial-cluster-state", state, "--enable-v2=true", "--log-level", "warn"]
        log = (self.base / name / "etcd.log").open("ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        (self.base / f"{name}.pid").write_text(str(proc.pid))

    def replace_member(self, name: str) -> None:
        """Stop ``name``, remove it from the cluster, wipe its data, add it back as a new
        member and start it empty: it catches up from the others."""
        self.stop_member(name)
        others = ",".join(self.url(n) for n in ETCD_MEMBERS if n != name)
        ctl = ["etcdctl", f"--endpoints={others}"]
        env = {**os.environ, "ETCDCTL_API": "3"}
        listed = subprocess.run(
            [*ctl, "member", "list"], capture_output=True, text=True, env=env, check=True
        )
        member_id = next(line.split(",")[0] for line in listed.stdout.splitlines() if name in line)
        # etcd refuses a reconfiguration until its members have been connected a few seconds.
        deadline = time.monotonic() + 60
        while True:
            removed = subprocess.run(
                [*ctl, "member", "remove", member_id],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if removed.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcdctl member remove: {removed.stderr.strip()}")
            time.sleep(1)
        shutil.rmtree(self.base / name / "data", ignore_errors=True)
        peer = f"--peer-urls=http://127.0.0.1:{ETCD_MEMBERS[name][1]}"
        subprocess.run(
            [*ctl, "member", "add", name, peer], check=True, env=env, capture_output=True
        )
        self.start_member(name, "existing")

    def __enter__(self) -> EtcdCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


@contextlib.contextmanager
def cpu_meter(pids: list[int]) -> Iterator[list[float]]:
    """Yields a one-item list set, on exit, to the CPU seconds ``pids`` used meanwhile."""
    spent = [0.0]
    before = cpu_of(pids)
    try:
        yield spent
    finally:
        spent[0] = cpu_of(pids) - before
