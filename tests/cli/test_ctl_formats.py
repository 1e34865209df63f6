"""``-w simple|json|table`` on every command of ``raftkv`` that a fake cluster can answer (the
lease, lock and election commands are checked against real processes in tests/e2e), and the
cluster, backup and completion commands."""

import json
import sys
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "client"))
import test_ctl
from fake_cluster import ENDPOINTS, FakeCluster
from test_ctl import stream_then

import raftkv
from raftkv_cli._backup import read_backup

N1, N2, N3 = ENDPOINTS


class Run(test_ctl.Run):
    """``test_ctl``'s runner, with every endpoint of the fake cluster, and the formats read."""

    def __call__(
        self, *argv: str, stdin: bytes = b"", environ: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        return super().__call__(
            *argv, stdin=stdin, environ={"RAFTKV_ENDPOINTS": ",".join(ENDPOINTS)}
        )

    def json(self, *argv: str) -> object:
        code, out = self(*argv, "-w", "json")
        assert code == 0, out
        return json.loads(out)

    def table(self, *argv: str) -> list[list[str]]:
        """The rows of a bordered table, header first, cells stripped."""
        code, out = self("-w", "table", *argv)
        assert code == 0, out
        lines = out.decode().splitlines()
        assert lines[0].startswith("+-") and lines[-1] == lines[0] == lines[2]
        return [[c.strip() for c in line.strip("|").split("|")] for line in lines if line[0] == "|"]


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def run(cluster: FakeCluster) -> Run:
    return Run(cluster)


def test_the_format_goes_before_or_after_the_command(run: Run) -> None:
    run("put", "k", "v")
    before = run("-w", "json", "get", "k")
    assert before == run("get", "k", "-w", "json") == run("get", "k", "--json")
    assert run("-w", "json", "get", "k", "-w", "simple") == (0, b"v")  # the last one wins
    assert run("-w", "yaml", "get", "k")[0] == 2


def test_keys_in_every_format(run: Run) -> None:
    assert run.json("put", "app/a", "1") == {"revision": 1}
    assert run.table("put", "app/b", "2") == [["REVISION"], ["2"]]
    assert run.json("get", "app/a") == {"key": "app/a", "value": "1", "mod_revision": 1}
    assert run.table("get", "app/b") == [["KEY", "VALUE", "MOD REVISION"], ["app/b", "2", "2"]]
    assert run.table("ls", "app/") == [
        ["KEY", "VALUE", "MOD REVISION"],
        ["app/a", "1", "1"],
        ["app/b", "2", "2"],
    ]
    code, out = run("ls", "app/", "-w", "json")
    assert code == 0 and [json.loads(line)["key"] for line in out.splitlines()] == [
        "app/a",
        "app/b",
    ]
    assert run.json("compact", "1") == {"revision": 2, "compact_revision": 1}
    assert run.table("compact", "2") == [["REVISION", "COMPACT REVISION"], ["2", "2"]]
    assert run.json("del", "app/a") == {"deleted": 1, "revision": 3}
    assert run.table("del", "--prefix", "app/") == [["DELETED", "REVISION"], ["1", "4"]]


def test_a_table_shows_bytes_that_are_not_text_escaped(run: Run) -> None:
    run("put", "bin", stdin=b"\xff\x00")
    assert run.table("get", "bin")[1] == ["bin", "\\xff\x00", "1"]
    assert run.json("get", "bin")["value_b64"] == "/wA="


def test_a_transaction_in_every_format(run: Run) -> None:
    run("put", "k", "v")
    body = json.dumps(
        {
            "compare": [{"key": "k", "target": "value", "op": "==", "value": "v"}],
            "success": [{"put": {"key": "k", "value": "w"}}, {"get": {"key": "k"}}],
            "failure": [],
        }
    ).encode()
    code, out = run("-w", "table", "txn", stdin=body)
    assert code == 0
    lines = out.decode().splitlines()
    assert lines[0] == "SUCCESS at revision 2"
    assert "| 1 | put       | revision 2 |" in lines
    assert any(line.startswith("| 2 | get ") and "k" in line for line in lines)
    answer = json.loads(run("txn", "-w", "json", stdin=body.replace(b'"v"', b'"w"', 1))[1])
    assert answer["succeeded"] is True and answer["revision"] == 3


def test_watch_as_a_table(run: Run, cluster: FakeCluster) -> None:
    run("put", "w/a", "1")
    run("put", "w/a", "2")
    cluster.script(N1, stream_then(cluster, KeyboardInterrupt))
    code, out = run("-w", "table", "watch", "--prefix", "w/", "--rev", "1", "--prev-kv")
    assert code == 130
    lines = out.decode().splitlines()
    assert lines[1].split("|")[1:-1] == [
        " REVISION ",
        " TYPE ",
        " KEY ",
        " VALUE ",
        " PREVIOUS VALUE ",
    ]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in lines[3:] if line[0] == "|"]
    assert rows == [["1", "PUT", "w/a", "1", ""], ["2", "PUT", "w/a", "2", "1"]]
    assert sum(1 for line in lines if "REVISION" in line) == 1  # one header for the stream


def test_member_commands_in_every_format(run: Run, cluster: FakeCluster) -> None:
    listed = run.json("member", "list")
    assert listed["leader"] == 1
    assert [(m["id"], m["role"], m["health"]) for m in listed["members"]] == [
        (1, "leader", "ok"),
        (2, "voter", "ok"),
        (3, "voter", "ok"),
    ]
    table = run.table("member", "list")
    assert table[0] == ["ID", "ROLE", "PEER URL", "CLIENT URL", "APPLIED", "HEALTH"]
    assert table[1] == ["1", "leader", "http://n1:12379", N1, "0", "ok"]
    added = run.json("member", "add", "4", "http://n4:42379")
    assert [m["id"] for m in added["members"]] == [1, 2, 3, 4]
    assert "health" not in added["members"][0]  # a change answers with the list only
    cluster.learners.add(4)
    assert run.table("member", "promote", "4")[-1] == ["4", "voter", "http://n4:42379", "-"]
    assert run.json("member", "remove", "4")["members"][-1]["id"] == 3


def test_leader_show_and_transfer(run: Run, cluster: FakeCluster) -> None:
    assert run("leader") == (0, b"1\n")
    assert run.json("leader", "show") == {"leader": 1, "term": 3}
    assert run("leader", "transfer", "2") == (0, b"leadership transferred to 2\n")
    assert cluster.leader == 2
    assert run.table("leader", "transfer", "3") == [["LEADER"], ["3"]]
    assert run("leader", "transfer", "x")[0] == 2


def test_endpoint_status(run: Run, cluster: FakeCluster) -> None:
    run("put", "k", "v")
    cluster.learners.add(3)
    table = run.table("endpoint", "status")
    assert table[0] == [
        "ENDPOINT",
        "ID",
        "VERSION",
        "KEYS",
        "REVISION",
        "IS LEADER",
        "IS LEARNER",
        "RAFT TERM",
        "RAFT INDEX",
        "RAFT APPLIED INDEX",
        "ERRORS",
    ]
    v = raftkv.__version__
    assert table[1:] == [
        [N1, "1", v, "1", "1", "true", "false", "3", "1", "1", ""],
        [N2, "2", v, "1", "1", "false", "false", "3", "1", "1", ""],
        [N3, "3", v, "1", "1", "false", "true", "3", "1", "1", ""],
    ]
    code, out = run("endpoint", "status")
    assert code == 0
    assert out.decode().splitlines()[0] == f"{N1}, 1, {v}, 1, 1, true, false, 3, 1, 1, "
    documents = run.json("endpoint", "status")
    assert [d["status"]["id"] for d in documents] == [1, 2, 3]


def test_endpoint_status_of_a_dead_endpoint(run: Run, cluster: FakeCluster) -> None:
    cluster.script(N2, httpx.ConnectError)
    code, out = run("-w", "json", "endpoint", "status")
    assert code == 1
    documents = json.loads(out)
    assert "status" in documents[0] and "status" in documents[2]
    assert documents[1]["endpoint"] == N2 and "unreachable" in documents[1]["error"]


def test_endpoint_health(run: Run, cluster: FakeCluster) -> None:
    code, out = run("endpoint", "health")
    assert code == 0
    lines = out.decode().splitlines()
    assert [line.split(" is ")[0] for line in lines] == list(ENDPOINTS)
    assert all(" is healthy: took = " in line for line in lines)
    cluster.unhealthy[N3] = "no leader"
    code, out = run("-w", "json", "endpoint", "health")
    assert code == 1
    assert [(r["endpoint"], r["health"], r["error"]) for r in json.loads(out)] == [
        (N1, True, None),
        (N2, True, None),
        (N3, False, "no leader"),
    ]
    code, out = run("-w", "table", "endpoint", "health")
    assert code == 1 and "| no leader |" in out.decode()


def test_endpoint_cluster_asks_every_member(run: Run, cluster: FakeCluster) -> None:
    code, out = run("--endpoints", N2, "-w", "json", "endpoint", "health", "--cluster")
    assert code == 0
    assert [r["endpoint"] for r in json.loads(out)] == list(ENDPOINTS)
    cluster.client_urls.clear()
    assert run("--endpoints", N2, "endpoint", "status", "--cluster")[0] == 2


def test_status_in_every_format(run: Run) -> None:
    code, out = run("status")
    assert code == 0 and json.loads(out)["id"] == 1 and out.count(b"\n") > 3  # indented
    assert run.json("status")["version"] == raftkv.__version__
    rows = dict(map(tuple, run.table("status")[1:]))
    assert rows["ROLE"] == "leader" and rows["MEMBERS"] == "3"


# -- backups ----------------------------------------------------------------------------------


def test_snapshot_save_and_status(run: Run, tmp_path: Path) -> None:
    for i in range(30):
        run("put", f"k{i:02d}", f"v{i}")
    target = tmp_path / "backup.snap"
    code, out = run("snapshot", "save", str(target))
    assert code == 0
    assert out.decode() == f"Snapshot saved at {target} (revision 30, 30 keys, from {N1})\n"
    assert not (tmp_path / "backup.snap.part").exists()
    info, store = read_backup(target)
    assert info.keys == 30 and store.get(b"k29").value == b"v29"
    status = run.json("snapshot", "status", str(target))
    assert status["revision"] == 30 and status["keys"] == 30 and status["sha256"] == info.sha256
    code, out = run("snapshot", "status", str(target))
    assert out.decode() == f"{info.sha256[:16]}, 30, 30, {info.size}\n"
    table = run.table("snapshot", "status", str(target))
    assert table[0] == ["HASH", "REVISION", "INDEX", "TOTAL KEYS", "LEASES", "TOTAL SIZE"]


def test_a_damaged_backup_is_refused(run: Run, tmp_path: Path, capsys) -> None:
    run("put", "k", "v")
    target = tmp_path / "backup.snap"
    assert run("snapshot", "save", str(target))[0] == 0
    data = bytearray(target.read_bytes())
    data[20] ^= 0xFF
    target.write_bytes(bytes(data))
    assert run("snapshot", "status", str(target))[0] == 1
    assert "checksum mismatch" in capsys.readouterr().err
    target.write_bytes(bytes(data[:-10]))
    assert run("snapshot", "status", str(target))[0] == 1
    assert "truncated" in capsys.readouterr().err
    assert run("snapshot", "status", str(tmp_path / "missing"))[0] == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_save_that_fails_leaves_no_file(run: Run, cluster: FakeCluster, tmp_path: Path) -> None:
    for endpoint in ENDPOINTS:
        cluster.script(endpoint, 503, 503)
    target = tmp_path / "backup.snap"
    assert run("snapshot", "save", str(target))[0] == 3
    assert list(tmp_path.iterdir()) == []


def test_snapshot_restore_makes_data_directories(run: Run, tmp_path: Path) -> None:
    run("put", "k", "v")
    backup = tmp_path / "backup.snap"
    run("snapshot", "save", str(backup))
    cluster = "http://127.0.0.1:1,http://127.0.0.1:2"
    for i in (1, 2):
        code, out = run(
            "snapshot",
            "restore",
            str(backup),
            "--data-dir",
            str(tmp_path / f"n{i}"),
            "--id",
            str(i),
            "--cluster",
            cluster,
        )
        assert code == 0
        expected = f"into {tmp_path / f'n{i}'} as member {i} of a new cluster of 2\n"
        assert out.decode().startswith("restored revision 1 (1 keys) ")
        assert out.decode().endswith(expected)
        assert (tmp_path / f"n{i}" / "raft").is_dir()
    again = ["snapshot", "restore", str(backup), "--data-dir", str(tmp_path / "n1")]
    assert run(*again, "--id", "1", "--cluster", cluster)[0] == 1  # not empty: BackupError


@pytest.mark.parametrize(
    "argv",
    [
        ["--id", "3", "--cluster", "http://127.0.0.1:1,http://127.0.0.1:2"],
        ["--id", "1", "--cluster", "nope"],
        ["--id", "1", "--cluster", "http://127.0.0.1:1", "--cluster-token", "bad token"],
        ["--cluster", "http://127.0.0.1:1"],
    ],
)
def test_snapshot_restore_usage_errors(run: Run, tmp_path: Path, argv: list[str], capsys) -> None:
    backup = tmp_path / "backup.snap"
    run("snapshot", "save", str(backup))
    code, _ = run("snapshot", "restore", str(backup), "--data-dir", str(tmp_path / "d"), *argv)
    assert code == 2
    assert capsys.readouterr().err.startswith("raftkv")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh"])
def test_completion_scripts(run: Run, shell: str) -> None:
    code, out = run("completion", shell)
    assert code == 0
    script = out.decode()
    for command in ("snapshot", "endpoint", "member", "--write-out"):
        assert command in script
