"""The private network itself: built, faulted and removed without a trace; and the product bugs
the fault suite found, each kept as a seeded real-process case that fails until it is fixed."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from jepsen import _netns
from jepsen._cluster import Cluster, Timing

_CONNECT = (
    "import socket,sys\n"
    "s=socket.socket();s.settimeout(1)\n"
    "try:\n s.connect((sys.argv[1],int(sys.argv[2])));print('ok')\n"
    "except OSError as e:\n print(type(e).__name__)\n"
)


def _connect_from(lab: _netns.Lab, node: int, address: str, port: int) -> str:
    cmd = [*lab.exec_prefix(node), sys.executable, "-c", _CONNECT, address, str(port)]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=20, check=False
    ).stdout.strip()


def _namespaces() -> set[str]:
    return set(_netns.run("ip", "netns", "list").stdout.split())


def test_a_lab_is_built_cut_healed_and_removed(netns_session: None) -> None:
    with _netns.open_lab(900) as lab:
        for node in (1, 2):
            lab.add_node(node)
        assert {lab.bridge_ns, *lab.nodes.values()} <= _namespaces()
        listener = subprocess.Popen(
            [
                *lab.exec_prefix(2),
                sys.executable,
                "-c",
                "import socket,time\ns=socket.socket()\ns.bind(('0.0.0.0',7000))\ns.listen()\n"
                "time.sleep(30)",
            ]
        )
        try:
            deadline = time.monotonic() + 10
            while _connect_from(lab, 1, lab.address(2), 7000) != "ok":
                assert time.monotonic() < deadline, "node 2 never listened"
            with socket.create_connection((lab.address(2), 7000), timeout=2):
                pass  # the test's side reaches a node through the client veth
            lab.drop(1, 2)
            assert _connect_from(lab, 1, lab.address(2), 7000) in ("TimeoutError", "timeout")
            lab.heal()
            assert _connect_from(lab, 1, lab.address(2), 7000) == "ok"
            lab.caps = dataclasses.replace(lab.caps, htb_u32=False)  # the route fallback
            lab.drop(1, 2)
            assert _connect_from(lab, 1, lab.address(2), 7000) != "ok"
            lab.heal()
            assert _connect_from(lab, 1, lab.address(2), 7000) == "ok"
        finally:
            listener.kill()
            listener.wait(10)
        names = {lab.bridge_ns, *lab.nodes.values()}
    assert not names & _namespaces()
    assert lab.name not in _netns.run("ip", "-br", "link").stdout


def test_a_crashed_runs_namespaces_are_removed_next_time(netns_session: None) -> None:
    dead = 4_000_000 + os.getpid() % 100_000  # above pid_max: no such process
    assert not _netns.pid_alive(dead)
    name = f"{_netns.PREFIX}{dead}-1-br"
    _netns.run("ip", "netns", "add", name)
    try:
        assert name in _netns.remove_stale()
        assert name not in _namespaces()
    finally:
        _netns.run("ip", "netns", "delete", name, check=False)


def test_a_joiner_that_knows_nothing_does_not_deny_a_member(
    netns_session: None, tmp_path: Path
) -> None:
    with _netns.open_lab(901) as lab:
        cluster = Cluster(
            lab,
            tmp_path,
            tmp_path,
            size=3,
            timing=Timing(),
            extra_flags=[],
            sync_journal=False,
            tmpfs=False,
        )
        try:
            cluster.start_all()
            leader = cluster.nodes[cluster.leader(timeout=30)]
            joiner = cluster.add_joiner()
            lab.drop_between([joiner.id], [1, 2, 3])  # it will hear from nobody
            with httpx.Client(trust_env=False, timeout=10) as http:
                r = http.post(f"{leader.url}/{joiner.id}", content=joiner.peer_url)
                assert r.status_code == 200, r.text
                joiner.start()
                deadline = time.monotonic() + 20
                while joiner.status() is None:
                    assert time.monotonic() < deadline, joiner.log_tail()
                    time.sleep(0.05)
                r = http.delete(f"{joiner.url}/3")
            assert r.status_code in (503, 504), (r.status_code, r.text)
        finally:
            cluster.close()
