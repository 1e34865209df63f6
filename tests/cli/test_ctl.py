"""The ``raftkv`` command-line client against a fake cluster (no network)."""

import io
import json
import sys
from pathlib import Path

import httpx
import pytest

# The fake cluster of the client tests serves these too.
sys.path.insert(0, str(Path(__file__).parent.parent / "client"))
from fake_cluster import ENDPOINTS, NO_WAIT, FakeCluster, Script

import raftkv
from raftkv.client import Client
from raftkv_cli import ctl


class Run:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.endpoints: list[str] = []

    def factory(self, endpoints: str, timeout: float) -> Client:
        self.endpoints.append(endpoints)
        self.timeout = timeout
        return Client(endpoints, retry=NO_WAIT, transport=self.cluster.mock_transport())

    def __call__(
        self, *argv: str, stdin: bytes = b"", environ: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        out = io.BytesIO()
        code = ctl.main(
            list(argv),
            environ=environ or {},
            client_factory=self.factory,
            stdin=io.BytesIO(stdin),
            stdout=out,
        )
        return code, out.getvalue()


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def run(cluster: FakeCluster) -> Run:
    return Run(cluster)


def test_put_get_del(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("put", "my-key", "hello") == (0, b"1\n")
    assert run("get", "my-key") == (0, b"hello")
    assert run("put", "my-key", stdin=b"from\nstdin") == (0, b"2\n")
    assert run("get", "my-key") == (0, b"from\nstdin")
    assert run("del", "my-key") == (0, b"")
    assert run("get", "my-key") == (1, b"")
    assert (
        "raftkv: error: key not found (404 from http://127.0.0.1:12380)" in capsys.readouterr().err
    )
    assert run("del", "my-key")[0] == 1


def test_get_json(run: Run) -> None:
    run("put", "k", "v")
    code, out = run("get", "k", "--json")
    assert code == 0
    assert json.loads(out) == {"key": "k", "value": "v", "mod_revision": 1}
    run("put", "bin", stdin=b"\xff")
    assert json.loads(run("get", "bin", "--json")[1])["value_b64"] == "/w=="


def test_non_utf8_arguments(run: Run, cluster: FakeCluster) -> None:
    key = b"caf\xe9".decode("utf-8", "surrogateescape")  # what Python makes of such argv
    assert run("put", key, "v")[0] == 0
    assert cluster.kv.get(b"caf\xe9") is not None


def test_serializable_get(run: Run, cluster: FakeCluster) -> None:
    run("put", "k", "v")
    run("get", "k", "--serializable")
    assert cluster.seen[-1].target.endswith("?consistency=serializable")


def test_compare_and_swap(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("put", "k", "1", "--create-only") == (0, b"1\n")
    assert run("put", "k", "2", "--create-only")[0] == 1
    assert "precondition failed" in capsys.readouterr().err
    assert run("put", "k", "2", "--if-revision", "1") == (0, b"2\n")
    assert run("put", "k", "3", "--if-revision", "1")[0] == 1
    assert run("del", "k", "--if-revision", "1")[0] == 1
    assert run("del", "k", "--if-revision", "2")[0] == 0


def test_ls(run: Run, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("a/1", "a/2", "a/3", "b"):
        run("put", key, key.upper())
    assert run("ls") == (0, b"a/1\na/2\na/3\nb\n")
    assert run("ls", "a/") == (0, b"a/1\na/2\na/3\n")
    assert run("ls", "a/", "--values") == (0, b"a/1\tA/1\na/2\tA/2\na/3\tA/3\n")
    assert run("ls", "a/", "--limit", "2") == (0, b"a/1\na/2\n")
    assert json.loads(run("ls", "b", "--json")[1]) == {
        "key": "b",
        "value": "B",
        "create_revision": 4,
        "mod_revision": 4,
        "version": 1,
    }
    # A long listing is fetched page by page.
    monkeypatch.setattr(ctl, "_PAGE", 2)
    before = len(cluster.seen)
    assert run("ls") == (0, b"a/1\na/2\na/3\nb\n")
    assert [s.target for s in cluster.seen[before:]] == [
        "/v1/kv?prefix=&limit=2",
        "/v1/kv?prefix=&limit=2&after=a%2F2",
    ]
    before = len(cluster.seen)
    assert run("ls", "--limit", "3") == (0, b"a/1\na/2\na/3\n")
    assert [s.target for s in cluster.seen[before:]] == [
        "/v1/kv?prefix=&limit=2",
        "/v1/kv?prefix=&limit=1&after=a%2F2",
    ]


def test_members(run: Run, cluster: FakeCluster) -> None:
    code, out = run("members")
    assert code == 0
    assert out.decode().splitlines() == [
        "ID  ROLE    PEER URL         CLIENT URL",
        "1   leader  http://n1:12379  -",
        "2   voter   http://n2:22379  -",
        "3   voter   http://n3:32379  -",
    ]
    assert run("members", "list") == (0, out)
    code, out = run("members", "add", "4", "http://n4:42379")
    assert code == 0
    assert out.decode().splitlines()[-1] == "4   voter   http://n4:42379  -"
    assert run("members", "add", "4", "http://n4:42379")[0] == 1  # 409: already a member
    code, out = run("members", "remove", "3")
    assert code == 0
    assert len(out.splitlines()) == 4
    assert run("members", "remove", "3")[0] == 1


def test_status(run: Run) -> None:
    code, out = run("status")
    assert code == 0
    assert json.loads(out)["role"] == "leader"


def test_endpoints_and_timeout(run: Run) -> None:
    run("status")
    assert run.endpoints == ["http://127.0.0.1:12380"]
    assert run.timeout == 10.0
    run("status", environ={"RAFTKV_ENDPOINTS": ",".join(ENDPOINTS)})
    assert run.endpoints[-1] == ",".join(ENDPOINTS)
    run(
        "--endpoints",
        "http://x:1",
        "--timeout",
        "2.5",
        "status",
        environ={"RAFTKV_ENDPOINTS": "http://y:1"},
    )
    assert (run.endpoints[-1], run.timeout) == ("http://x:1", 2.5)


@pytest.mark.parametrize(
    "case",
    [
        (503, 3, "scripted 503"),
        (httpx.ConnectError, 3, "unreachable"),
        (400, 2, "scripted 400"),
        (413, 2, "scripted 413"),
        (504, 3, "outcome unknown"),
        (500, 3, "outcome unknown"),
        (409, 1, "scripted 409"),
    ],
)
def test_failures(
    run: Run,
    cluster: FakeCluster,
    capsys: pytest.CaptureFixture[str],
    case: tuple[Script, int, str],
) -> None:
    failure, code, message = case
    cluster.script("http://127.0.0.1:12380", failure, failure)
    assert run("put", "k", "v")[0] == code
    err = capsys.readouterr().err
    assert err.startswith("raftkv: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_outcome_unknown_says_so(
    run: Run, cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.script("http://127.0.0.1:12380", httpx.ReadTimeout)
    assert run("put", "k", "v")[0] == 3
    assert "may or may not have been applied" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["get"],
        ["put", "k", "v", "--if-revision", "x"],
        ["put", "k", "v", "--if-revision", "1", "--create-only"],
        ["ls", "--limit", "0"],
        ["members", "add", "zero", "http://h:1"],
        ["members", "remove"],
        ["--timeout", "0", "status"],
    ],
)
def test_usage_errors(run: Run, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert run(*argv)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith("raftkv")  # "raftkv: error: ..." or "raftkv members add: error: ..."
    assert ": error: " in err
    assert err.count("\n") == 1
    assert run.endpoints == []  # nothing was sent


def test_bad_endpoint_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["--endpoints", "nope", "status"], environ={}) == 2
    assert "raftkv: error: bad endpoint 'nope'" in capsys.readouterr().err


def test_empty_key_is_a_usage_error(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("get", "")[0] == 2
    assert "must not be empty" in capsys.readouterr().err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["--help"], environ={}) == 0
    out = capsys.readouterr().out
    for command in (
        "get",
        "put",
        "del",
        "ls",
        "members",
        "status",
        "RAFTKV_ENDPOINTS",
        "exit status",
    ):
        assert command in out
    assert ctl.main(["members", "--help"], environ={}) == 0
    assert "add" in capsys.readouterr().out
    assert ctl.main(["--version"], environ={}) == 0
    assert capsys.readouterr().out == f"raftkv {raftkv.__version__}\n"
