"""The logs tell what the cluster did: a failover is in every survivor's INFO log (the lost
peer, the election, the new leader), every JSON line parses and names the node and its term,
and forwarding a request leaves no client-library noise."""

from __future__ import annotations

import json

import httpx

from ._procs import Cluster, wait_for


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_failover_is_in_the_info_log_as_json(cluster_factory) -> None:
    c: Cluster = cluster_factory(3)
    for d in c.daemons.values():
        d.args += ["--log-format", "json"]
    c.start_all()
    old = c.wait_leader()
    follower = next(i for i in c.daemons if i != old)
    r = httpx.post(f"{c.daemons[follower].url}/v1/leader", json={"id": follower}, timeout=10)
    assert r.status_code == 200, r.text  # forwarded to the leader: no httpx lines for it
    old = c.wait_leader()
    c.daemons[old].kill9()
    rest = [i for i in c.daemons if i != old]
    new = c.wait_leader(rest)
    wait_for(
        lambda: all(f"lost the connection to {old}" in c.daemons[i].log_text() for i in rest),
        what="the lost peer in the survivors' logs",
    )
    for i in rest:
        lines = _lines(c.daemons[i].log_text())  # every line is JSON
        assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
        running = [line for line in lines if "node" in line]
        assert running and all(line["node"] == i and line["term"] >= 1 for line in running)
        assert all(
            line["role"] in ("leader", "follower", "candidate", "pre-candidate") for line in running
        )
        messages = [line["msg"] for line in lines if line["level"] == "info"]
        assert any(f"lost the connection to {old}" in m for m in messages)
        assert not any(line["logger"].startswith(("httpx", "httpcore")) for line in lines)
    new_log = [line["msg"] for line in _lines(c.daemons[new].log_text())]
    assert any("started an election" in m for m in new_log)
    assert any("won the election" in m for m in new_log)
    other = next(i for i in rest if i != new)
    assert any(
        f"follows leader {new}" in line["msg"] for line in _lines(c.daemons[other].log_text())
    )


def test_a_fatal_error_is_printed_once(cluster_factory) -> None:
    c: Cluster = cluster_factory(2)
    a, b = c.daemons[1], c.daemons[2]
    a.start()
    wait_for(lambda: a.status() is not None, what="node 1 serving")
    b.args[b.args.index("--port") + 1] = str(a.client_port)  # busy: node 1 holds it
    b.start()
    assert b.proc is not None and b.proc.wait(30) == 1
    errors = [line for line in b.log_text().splitlines() if "raftkvd: error:" in line]
    assert len(errors) == 1 and errors[0].startswith("raftkvd: error:"), errors
