"""The ``raftkv`` command-line client against a fake cluster (no network)."""

import io
import json
import sys
from pathlib import Path

import httpx
import pytest

# The fake cluster of the client tests serves these too.
sys.path.insert(0, str(Path(__file__).parent.parent / "client"))
from fake_cluster import ENDPOINTS, NO_WAIT, FakeCluster, Script, _Chunks

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
        "watch",
        "txn",
        "compact",
        "RAFTKV_ENDPOINTS",
        "exit status",
    ):
        assert command in out
    assert ctl.main(["members", "--help"], environ={}) == 0
    assert "add" in capsys.readouterr().out
    assert ctl.main(["--version"], environ={}) == 0
    assert capsys.readouterr().out == f"raftkv {raftkv.__version__}\n"


# -- history, transactions, watches ---------------------------------------------------------------

N1, N2, _ = ENDPOINTS
DEFAULT = "http://127.0.0.1:12380"  # where the commands go without --endpoints


def test_reads_at_a_revision(run: Run, cluster: FakeCluster, capsys) -> None:
    run("put", "k", "1")
    run("put", "k", "2")
    assert run("get", "k", "--rev", "1") == (0, b"1")
    assert cluster.seen[-1].target == "/v1/kv/k?revision=1"
    assert run("ls", "--rev", "1", "--values") == (0, b"k\t1\n")
    assert run("compact", "2") == (0, b"compacted revision 2\n")
    assert run("get", "k", "--rev", "1")[0] == 1  # compacted: like not found
    assert "revision compacted" in capsys.readouterr().err
    assert run("compact", "2")[0] == 1
    assert run("get", "k", "--rev", "9")[0] == 2  # in the future: a bad request


def test_delete_by_prefix_prints_how_many(run: Run, cluster: FakeCluster) -> None:
    for key in ("a/1", "a/2", "b"):
        run("put", key, "v")
    assert run("del", "--prefix", "a/") == (0, b"2\n")
    assert run("del", "--prefix", "a/") == (0, b"0\n")
    assert run("del", "--prefix", "") == (0, b"1\n")
    assert len(cluster.kv) == 0


TXN = {
    "compare": [{"key": "k", "target": "value", "op": "==", "value": "v"}],
    "success": [{"put": {"key": "k", "value": "w"}}, {"get": {"key": "k"}}],
    "failure": [{"range": {"prefix": "k"}}, {"delete": {"key": "k"}}],
}


def test_txn_from_stdin_or_a_file(run: Run, tmp_path: Path) -> None:
    run("put", "k", "v")
    assert run("txn", stdin=json.dumps(TXN).encode()) == (0, b"SUCCESS\n\nOK\n\nk\nw\n")
    path = tmp_path / "txn.json"
    path.write_text(json.dumps(TXN))
    assert run("txn", str(path)) == (0, b"FAILURE\n\nk\nw\n\n1\n")  # exit 0 either way
    run("put", "k", "v")  # 4: created again
    code, out = run("txn", str(path), "-w", "json")
    assert code == 0
    kv = {"key": "k", "create_revision": 4, "mod_revision": 4, "version": 1}
    assert json.loads(out) == {
        "succeeded": True,
        "revision": 5,
        "responses": [
            {"put": {"revision": 5, "prev_kv": {**kv, "value": "v"}}},
            {"get": {"kvs": [{**kv, "value": "w", "mod_revision": 5, "version": 2}]}},
        ],
    }
    code, out = run("txn", str(path), "--write-out", "json")  # k is w now: the failure branch
    assert json.loads(out)["responses"] == [
        {"range": {"kvs": [{**kv, "value": "w", "mod_revision": 5, "version": 2}], "more": False}},
        {"delete": {"deleted": 1}},
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "not JSON in standard input"),
        (
            b'{"compare": [{"key": "k", "target": "size", "op": "==", "value": 1}]}',
            "bad transaction in standard input: compare[0].target: unknown target 'size'",
        ),
        (b"[]", "bad transaction"),
    ],
)
def test_a_bad_transaction_is_a_usage_error(
    run: Run, cluster: FakeCluster, capsys, content: bytes, message: str
) -> None:
    assert run("txn", stdin=content)[0] == 2
    err = capsys.readouterr().err
    assert err.startswith(f"raftkv: error: {message}"), err
    assert cluster.seen == []


def test_a_missing_transaction_file(run: Run, capsys, tmp_path: Path) -> None:
    assert run("txn", str(tmp_path / "absent.json"))[0] == 2
    assert "cannot read" in capsys.readouterr().err


def stream_then(cluster: FakeCluster, failure: type[BaseException], **options: object):
    """A script: the watch stream, then ``failure`` raised while the client waits for more."""

    def script(request: httpx.Request) -> httpx.Response:
        response = cluster.watch_stream(request, **options)  # type: ignore[arg-type]

        def chunks():
            yield from response.stream  # type: ignore[union-attr]
            raise failure()

        return httpx.Response(200, headers=response.headers, stream=_Chunks(chunks()))

    return script


def test_watch_prints_each_revision_until_interrupted(run: Run, cluster: FakeCluster) -> None:
    run("put", "k", "1")
    run("put", "other", "x")
    run("put", "k", "2")
    run("del", "k")
    cluster.script(DEFAULT, stream_then(cluster, KeyboardInterrupt))
    code, out = run("watch", "k", "--rev", "1")
    assert code == 130  # Ctrl-C ends a watch; what came before it was printed
    assert out == b"PUT\nk\n1\nPUT\nk\n2\nDELETE\nk\n\n"
    cluster.script(DEFAULT, stream_then(cluster, KeyboardInterrupt))
    code, out = run("watch", "k", "--rev", "3", "--prev-kv")
    assert out == b"PUT\nk\n1\nk\n2\nDELETE\nk\n2\nk\n\n"
    cluster.script(DEFAULT, stream_then(cluster, KeyboardInterrupt))
    code, out = run("watch", "--prefix", "", "--rev", "2", "-w", "json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["revision"] for line in lines] == [2, 3, 4]
    assert lines[0]["events"][0]["kv"]["key"] == "other"
    assert cluster.seen[-1].target == "/v1/watch?prefix=&start_revision=2"


def test_watch_resumes_across_a_failure(run: Run, cluster: FakeCluster) -> None:
    for i in range(4):
        run("put", "k", str(i))
    cluster.script(N1, lambda r: cluster.watch_stream(r, changes=2, then="break"))
    cluster.script(N2, stream_then(cluster, KeyboardInterrupt))
    code, out = run("--endpoints", ",".join(ENDPOINTS), "watch", "k", "--rev", "1")
    assert code == 130
    assert out == b"".join(b"PUT\nk\n%d\n" % i for i in range(4))  # each revision once
    assert [s.endpoint for s in cluster.seen if "watch" in s.target] == [N1, N2]


def test_watch_from_a_compacted_revision(run: Run, cluster: FakeCluster, capsys) -> None:
    for i in range(3):
        run("put", "k", str(i))
    run("compact", "2")
    assert run("watch", "k", "--rev", "2")[0] == 1
    assert "revision compacted" in capsys.readouterr().err


def test_watch_into_a_closed_pipe_ends_quietly(run: Run, cluster: FakeCluster) -> None:
    class ClosedPipe(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            raise BrokenPipeError

    run("put", "k", "v")
    code = ctl.main(
        ["watch", "k", "--rev", "1"],
        environ={},
        client_factory=run.factory,
        stdin=io.BytesIO(),
        stdout=ClosedPipe(),
    )
    assert code == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["watch"],
        ["watch", "k", "--prefix", "k"],
        ["watch", "k", "--rev", "0"],
        ["watch", "k", "-w", "yaml"],
        ["del"],
        ["del", "k", "--prefix", "k"],
        ["compact"],
        ["compact", "0"],
        ["get", "k", "--rev", "x"],
        ["txn", "a", "b"],
    ],
)
def test_more_usage_errors(run: Run, capsys, argv: list[str]) -> None:
    assert run(*argv)[0] == 2
    assert ": error: " in capsys.readouterr().err
    assert run.endpoints == []


def test_a_prefix_delete_takes_no_condition(run: Run, capsys) -> None:
    assert run("del", "--prefix", "a", "--if-revision", "3")[0] == 2
    assert "takes no --if-revision" in capsys.readouterr().err
