"""The seed README's walkthrough, with real raftkvd processes and curl-equivalent requests.

Each test follows one paragraph of the walkthrough and checks what the seed promises, plus
what raftkv promises beyond it (reads after writes elsewhere, no hang without a quorum).
"""

from __future__ import annotations

import time

import httpx

from ._procs import FAST, Daemon, wait_for


def test_single_node_stores_and_reads(cluster_factory) -> None:
    c = cluster_factory(1)
    c.start_all()
    c.wait_leader()
    n1 = c.daemons[1]
    r = n1.put("/my-key", "hello")
    assert r.status_code == 204
    assert int(r.headers["x-raft-index"]) >= 1 and int(r.headers["x-raft-term"]) >= 1
    r = n1.get("/my-key")
    assert (r.status_code, r.content) == (200, b"hello")


def test_three_nodes_write_anywhere_read_anywhere(cluster_factory) -> None:
    c = cluster_factory(3)
    c.start_all()
    c.wait_leader()
    for i, writer in c.daemons.items():
        assert writer.put(f"/key-{i}", f"from-{i}").status_code == 204
        # Linearizable: a read right after the write, on every other node, sees it.
        for reader in c.daemons.values():
            r = reader.get(f"/key-{i}")
            assert (r.status_code, r.text) == (200, f"from-{i}"), reader.id


def test_killed_node_catches_up_after_restart(cluster_factory) -> None:
    c = cluster_factory(3)
    c.start_all()
    c.wait_leader()
    n1, n2, n3 = c.daemons[1], c.daemons[2], c.daemons[3]
    assert n1.put("/k", "before").status_code == 204
    n3.kill9()
    c.wait_leader([1, 2])
    assert n1.put("/k", "after").status_code == 204
    assert n2.put("/k2", "while-down").status_code == 204
    n3.start()
    wait_for(lambda: (n3.status() or {}).get("leader") is not None, what="node 3 back")
    r = n3.get("/k")
    assert (r.status_code, r.text) == (200, "after")
    assert n3.get("/k2").text == "while-down"


def test_add_node_four_then_remove_node_three(cluster_factory) -> None:
    c = cluster_factory(3)
    c.start_all()
    c.wait_leader()
    n1, n3 = c.daemons[1], c.daemons[3]
    assert n1.put("/my-key", "hello").status_code == 204
    peer4, client4 = c.spare_ports
    n4 = Daemon(4, peer4, client4, c.workdir)
    n4.args = [
        "--id",
        "4",
        "--cluster",
        f"{c.cluster_arg},{n4.peer_url}",
        "--port",
        str(client4),
        "--join",
        *FAST,
    ]
    c.daemons[4] = n4
    r = httpx.post(f"{n1.url}/4", content=n4.peer_url, timeout=10, follow_redirects=True)
    assert r.status_code == 200, r.text
    assert 4 in [m["id"] for m in r.json()["members"]]
    n4.start()
    wait_for(
        lambda: n4.get("/my-key").status_code == 200 if n4.status() else False,
        what="node 4 to serve the key",
    )
    assert n4.get("/my-key").text == "hello"
    assert n4.put("/from-4", "yes").status_code == 204
    assert n1.get("/from-4").text == "yes"
    # Node 4 is promoted to a voter once it caught up.
    wait_for(
        lambda: any(
            m["id"] == 4 and m["voter"] for m in (n1.status() or {"members": []})["members"]
        ),
        what="node 4 promoted",
    )
    r = httpx.delete(f"{n1.url}/3", timeout=10, follow_redirects=True)
    assert r.status_code == 200, r.text
    assert 3 not in [m["id"] for m in r.json()["members"]]
    assert n3.proc is not None
    assert n3.proc.wait(20) == 0, n3.log_text()[-2000:]
    assert n1.put("/after-removal", "ok").status_code == 204
    assert n4.get("/after-removal").text == "ok"


def test_full_restart_keeps_the_data(cluster_factory) -> None:
    c = cluster_factory(3)
    c.start_all()
    c.wait_leader()
    for k in range(20):
        assert c.daemons[k % 3 + 1].put(f"/k{k}", f"v{k}").status_code == 204
    for d in c.daemons.values():
        assert d.stop() == 0, d.log_text()[-2000:]
    c.start_all()
    c.wait_leader()
    for k in range(20):
        r = c.daemons[(k + 1) % 3 + 1].get(f"/k{k}")
        assert (r.status_code, r.text) == (200, f"v{k}")


def test_minority_answers_503_instead_of_hanging(cluster_factory) -> None:
    c = cluster_factory(3)
    c.start_all()
    c.wait_leader()
    survivor = c.daemons[1]
    assert survivor.put("/k", "v").status_code == 204
    c.daemons[2].kill9()
    c.daemons[3].kill9()
    started = time.monotonic()
    r = survivor.put("/k", "lost?")
    # Either refused outright (no leader) or "outcome unknown" after the request timeout;
    # never a success, never a hang.
    assert r.status_code in (503, 504), r.text
    assert r.json()["error"]
    assert time.monotonic() - started < 8
    # Once CheckQuorum has deposed the lone leader, refusals are immediate and certain.
    wait_for(lambda: survivor.get("/-/health").status_code == 503, what="health 503")
    r = survivor.put("/k", "refused")
    assert r.status_code == 503 and "retry-after" in r.headers
    r = survivor.get("/k")
    assert r.status_code in (503, 504)
    r = survivor.get("/k", params={"consistency": "serializable"})
    assert (r.status_code, r.text) == (200, "v")


def test_removing_the_leader_hands_leadership_over(cluster_factory) -> None:
    c = cluster_factory(3)
    c.start_all()
    leader_id = c.wait_leader()
    follower = next(d for i, d in c.daemons.items() if i != leader_id)
    assert follower.put("/k", "v").status_code == 204
    r = httpx.delete(f"{follower.url}/{leader_id}", timeout=15)
    assert r.status_code == 200, r.text
    assert leader_id not in [m["id"] for m in r.json()["members"]]
    old = c.daemons[leader_id]
    assert old.proc is not None and old.proc.wait(20) == 0, old.log_text()[-2000:]
    rest = [i for i in c.daemons if i != leader_id]
    new_leader = c.wait_leader(rest)
    assert new_leader != leader_id
    assert c.daemons[rest[0]].put("/k", "after").status_code == 204
    assert c.daemons[rest[1]].get("/k").text == "after"
