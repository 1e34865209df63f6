"""raftkvd's settings: every flag, its environment variable, defaults, errors and --help."""

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import raftkv
from raftkv.kv import Retention
from raftkv_cli._settings import (
    DEFAULT_CLUSTER_TOKEN,
    Settings,
    SettingsError,
    main_parse,
    parse_peer_url,
    parse_settings,
)

CLUSTER3 = "http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379"


def parse(*argv: str, **environ: str) -> Settings:
    return parse_settings(list(argv), environ)


def test_defaults_are_a_single_node_on_loopback() -> None:
    s = parse()
    assert s == Settings(
        node_id=1,
        cluster=("http://127.0.0.1:12379",),
        port=12380,
        host="127.0.0.1",
        join=False,
        data_dir=Path("raftkv-1"),
        snapshot_count=10_000,
        catch_up_entries=5_000,
        auto_compaction_retention=Retention(10_000),
        wal_segment_bytes=64 << 20,
        tick_ms=100,
        election_ticks=10,
        heartbeat_ticks=1,
        max_key_bytes=1024,
        max_value_bytes=1536 * 1024,
        request_timeout=5.0,
        bind_retry=60.0,
        log_level="INFO",
        log_format="text",
        cluster_token=None,
        peer_cert_file=None,
        peer_key_file=None,
        peer_trusted_ca_file=None,
        client_cert_file=None,
        client_key_file=None,
        client_ca_file=None,
        auth_token_ttl=300,
    )
    assert s.peer_url == "http://127.0.0.1:12379"
    assert s.peers == {1: "http://127.0.0.1:12379"}
    assert s.tick_interval == 0.1
    assert not s.peer_tls
    assert s.cluster_id == DEFAULT_CLUSTER_TOKEN


def test_auto_compaction_retention_by_revisions_or_age() -> None:
    assert parse("--auto-compaction-retention", "500").auto_compaction_retention == Retention(500)
    assert parse("--auto-compaction-retention", "1h").auto_compaction_retention == Retention(
        None, 3600
    )
    assert parse("--auto-compaction-retention", "0").auto_compaction_retention == Retention(None)
    with pytest.raises(SettingsError, match="neither a number of revisions nor an age"):
        parse("--auto-compaction-retention", "soon")


def test_seed_commands() -> None:
    s = parse("--id", "2", "--cluster", CLUSTER3, "--port", "22380")
    assert s.node_id == 2
    assert s.peer_url == "http://127.0.0.1:22379"
    assert s.peers == {
        1: "http://127.0.0.1:12379",
        2: "http://127.0.0.1:22379",
        3: "http://127.0.0.1:32379",
    }
    assert s.data_dir == Path("raftkv-2")
    assert not s.join
    joiner = parse(
        "--id", "4", "--cluster", CLUSTER3 + ",http://127.0.0.1:42379", "--port", "42380", "--join"
    )
    assert joiner.join
    assert joiner.peer_url == "http://127.0.0.1:42379"
    assert joiner.data_dir == Path("raftkv-4")


# (flag, value, settings field, expected) for every option but --join and the TLS files.
FLAGS: list[tuple[str, str, str, Any]] = [
    ("--id", "1", "node_id", 1),
    ("--cluster", "http://10.0.0.1:2380, HTTP://[::1]:2381/", "cluster", None),
    ("--port", "8080", "port", 8080),
    ("--host", "0.0.0.0", "host", "0.0.0.0"),
    ("--data-dir", "/var/lib/raftkv", "data_dir", Path("/var/lib/raftkv")),
    ("--snapshot-count", "500", "snapshot_count", 500),
    ("--catch-up-entries", "0", "catch_up_entries", 0),
    ("--tick-ms", "50", "tick_ms", 50),
    ("--election-ticks", "20", "election_ticks", 20),
    ("--heartbeat-ticks", "3", "heartbeat_ticks", 3),
    ("--max-key-bytes", "2KiB", "max_key_bytes", 2048),
    ("--max-value-bytes", "4MiB", "max_value_bytes", 4 * 1024 * 1024),
    ("--request-timeout", "2.5", "request_timeout", 2.5),
    ("--log-level", "debug", "log_level", "DEBUG"),
    ("--log-format", "json", "log_format", "json"),
    ("--cluster-token", "prod-eu.1", "cluster_token", "prod-eu.1"),
]


@pytest.mark.parametrize(("flag", "value", "field", "expected"), FLAGS)
def test_every_flag(flag: str, value: str, field: str, expected: Any) -> None:
    s = parse(flag, value)
    if expected is None:
        expected = ("http://10.0.0.1:2380", "http://[::1]:2381")
    assert getattr(s, field) == expected


@pytest.mark.parametrize(("flag", "value", "field", "expected"), FLAGS)
def test_every_flag_has_an_environment_variable(
    flag: str, value: str, field: str, expected: Any
) -> None:
    env = "RAFTKV_" + flag.removeprefix("--").replace("-", "_").upper()
    s = parse(**{env: value})
    if expected is None:
        expected = ("http://10.0.0.1:2380", "http://[::1]:2381")
    assert getattr(s, field) == expected


def test_flags_win_over_the_environment() -> None:
    s = parse("--port", "1111", "--no-join", RAFTKV_PORT="2222", RAFTKV_JOIN="true")
    assert s.port == 1111
    assert not s.join
    assert parse(RAFTKV_PORT="2222").port == 2222


def test_empty_environment_variables_are_unset() -> None:
    assert parse(RAFTKV_PORT="", RAFTKV_JOIN=" ").port == 12380


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("1", True), ("true", True), ("YES", True), ("on", True)],
        *[("0", False), ("False", False), ("no", False), ("off", False)],
    ],
)
def test_join_from_the_environment(text: str, expected: bool) -> None:
    assert parse(RAFTKV_JOIN=text).join is expected


def test_join_flag() -> None:
    assert parse("--join").join
    assert not parse("--join", "--no-join").join


def test_cluster_id_alias() -> None:
    assert parse("--cluster-id", "abc").cluster_token == "abc"


def test_the_cluster_id() -> None:
    # The same for founders and joiners (a joiner's --cluster is longer), unless a token says.
    founder = parse("--cluster", CLUSTER3)
    joiner = parse("--cluster", CLUSTER3 + ",http://127.0.0.1:42379", "--id", "4", "--join")
    assert founder.cluster_id == joiner.cluster_id == DEFAULT_CLUSTER_TOKEN
    assert parse("--cluster-token", "blue").cluster_id == "blue"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:12379", "http://127.0.0.1:12379"),
        ("HTTP://LocalHost:80/", "http://localhost:80"),
        ("https://[::1]:443", "https://[::1]:443"),
        (" http://h:1 ", "http://h:1"),
    ],
)
def test_peer_urls_are_normalised(text: str, expected: str) -> None:
    assert parse_peer_url(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1:12379", "expected http://host:port"),
        ("ftp://h:1", "expected http://host:port"),
        ("http://:1", "no host"),
        ("http://h", "expected a port between 1 and 65535"),
        ("http://h:0", "expected a port between 1 and 65535"),
        ("http://h:70000", "Port out of range"),
        ("http://h:port", "bad peer URL"),
        ("http://u@h:1", "expected only scheme://host:port"),
        ("http://h:1/path", "expected only scheme://host:port"),
        ("http://h:1?q", "expected only scheme://host:port"),
    ],
)
def test_bad_peer_urls(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_peer_url(text)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--id", "0"], "argument --id: must be at least 1, got 0"),
        (["--id", "x"], "argument --id: expected an integer, got 'x'"),
        (["--id", "2"], "--id 2 is out of range: --cluster lists 1 peer URL"),
        (["--id", "4", "--cluster", CLUSTER3], "--id 4 is out of range: --cluster lists 3"),
        (["--cluster", ""], "expected comma-separated peer URLs"),
        (["--cluster", "http://a:1,,http://b:1"], "expected comma-separated peer URLs"),
        (["--cluster", "http://a:1,http://A:1/"], "peer URL http://a:1 is listed twice"),
        (["--cluster", "a:1"], "argument --cluster: bad peer URL 'a:1'"),
        (["--port", "0"], "argument --port: must be between 1 and 65535, got 0"),
        (["--port", "65536"], "argument --port: must be between 1 and 65535"),
        (["--port", "12379"], "--port 12379 is this node's peer port"),
        (["--port", "12379", "--host", "0.0.0.0"], "this node's peer port"),
        (["--host", ""], "argument --host: expected a host name or IP address"),
        (["--host", "a b"], "expected a host name"),
        (["--data-dir", ""], "argument --data-dir: expected a path"),
        (["--snapshot-count", "0"], "argument --snapshot-count: must be at least 1"),
        (["--catch-up-entries", "-1"], "argument --catch-up-entries: must be at least 0"),
        (["--tick-ms", "0"], "argument --tick-ms: must be between 1 and 60000"),
        (["--tick-ms", "1.5"], "argument --tick-ms: expected an integer"),
        (["--election-ticks", "1"], "argument --election-ticks: must be at least 2"),
        (["--heartbeat-ticks", "0"], "argument --heartbeat-ticks: must be at least 1"),
        (["--heartbeat-ticks", "10"], "--heartbeat-ticks \\(10\\) must be less than --election"),
        (["--max-key-bytes", "0"], "argument --max-key-bytes: must be between 1 and 65536"),
        (["--max-key-bytes", "1MiB"], "must be between 1 and 65536 bytes, got 1048576"),
        (["--max-value-bytes", "1 parsec"], "expected a size in bytes such as 1024"),
        (["--max-value-bytes", "1GiB"], "must be between 1 and 67108864 bytes"),
        (["--request-timeout", "0"], "argument --request-timeout: must be more than 0"),
        (["--request-timeout", "soon"], "expected a duration such as 5, 2.5s or 500ms"),
        (["--log-level", "loud"], "argument --log-level: expected one of debug, info, warning"),
        (["--log-format", "xml"], "argument --log-format: expected one of text, json"),
        (["--cluster-token=-x"], "argument --cluster-token/--cluster-id: expected 1-64"),
        (["--cluster-token", "a" * 65], "expected 1-64 letters"),
        (["--peer-cert-file", "/nonexistent/cert.pem"], "no such file: /nonexistent/cert.pem"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--po", "1"], "unrecognized arguments"),  # no abbreviations: they break on new flags
        (["positional"], "unrecognized arguments: positional"),
        (["--port"], "argument --port: expected one argument"),
    ],
)
def test_bad_flags(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse(*argv)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RAFTKV_PORT": "http"}, "environment variable RAFTKV_PORT: expected an integer"),
        ({"RAFTKV_JOIN": "maybe"}, "environment variable RAFTKV_JOIN: expected true/false"),
        ({"RAFTKV_ID": "5"}, "--id 5 is out of range"),
        ({"RAFTKV_CLUSTER": "http://h"}, "RAFTKV_CLUSTER: bad peer URL 'http://h'"),
    ],
)
def test_bad_environment(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse(**environ)


def test_a_bad_environment_variable_does_not_matter_when_the_flag_is_given() -> None:
    assert parse("--port", "1", RAFTKV_PORT="junk").port == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[("1024", 1024), ("1k", 1000), ("1KB", 1000), ("1kib", 1024), ("1.5MiB", 1572864)],
        *[("2 MB", 2_000_000), ("100b", 100)],
    ],
)
def test_sizes(text: str, expected: int) -> None:
    assert parse("--max-value-bytes", text).max_value_bytes == expected


@pytest.mark.parametrize(("text", "expected"), [("5", 5.0), ("2.5s", 2.5), ("500ms", 0.5)])
def test_durations(text: str, expected: float) -> None:
    assert parse("--request-timeout", text).request_timeout == expected


def test_ports_may_match_on_different_hosts() -> None:
    s = parse("--cluster", "http://10.0.0.1:2380", "--port", "2380", "--host", "127.0.0.1")
    assert s.port == 2380


@pytest.fixture
def pem_files(tmp_path: Path) -> tuple[str, str, str]:
    files = []
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / name).write_text("-----BEGIN PLACEHOLDER-----\n")
        files.append(str(tmp_path / name))
    return files[0], files[1], files[2]


def test_peer_tls(pem_files: tuple[str, str, str]) -> None:
    cert, key, ca = pem_files
    s = parse(
        "--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca,
        "--cluster", "https://127.0.0.1:12379",
    )  # fmt: skip
    assert (s.peer_cert_file, s.peer_key_file, s.peer_trusted_ca_file) == (
        Path(cert),
        Path(key),
        Path(ca),
    )
    assert s.peer_tls
    env = parse(RAFTKV_PEER_CERT_FILE=cert, RAFTKV_PEER_KEY_FILE=key)
    assert env.peer_tls
    assert env.peer_trusted_ca_file is None


def test_peer_tls_errors(pem_files: tuple[str, str, str]) -> None:
    cert, key, ca = pem_files
    with pytest.raises(SettingsError, match="--peer-cert-file and --peer-key-file go together"):
        parse("--peer-cert-file", cert)
    with pytest.raises(SettingsError, match="go together"):
        parse("--peer-key-file", key)
    with pytest.raises(SettingsError, match="--peer-trusted-ca-file needs --peer-cert-file"):
        parse("--peer-trusted-ca-file", ca)
    with pytest.raises(SettingsError, match="https peer URLs need --peer-cert-file"):
        parse("--cluster", "https://127.0.0.1:12379")
    with pytest.raises(SettingsError, match="RAFTKV_PEER_KEY_FILE: no such file"):
        parse("--peer-cert-file", cert, RAFTKV_PEER_KEY_FILE="/nonexistent")


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse().port = 1  # type: ignore[misc]


def test_errors_are_one_line() -> None:
    for argv in (["--id", "9"], ["--port", "x"], ["--cluster", "nope"], ["--nope"]):
        with pytest.raises(SettingsError) as info:
            parse(*argv)
        assert "\n" not in str(info.value)


def test_main_parse_exits_2_with_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main_parse(["--id", "7"], {})
    assert info.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "raftkvd: error: --id 7 is out of range: --cluster lists 1 peer URL(s)\n"


def test_main_parse_returns_settings() -> None:
    assert main_parse(["--port", "9"], {"RAFTKV_ID": "1"}).port == 9


def test_main_parse_reads_sys_argv_and_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["raftkvd", "--port", "4321"])
    monkeypatch.setenv("RAFTKV_TICK_MS", "25")
    s = main_parse()
    assert (s.port, s.tick_ms) == (4321, 25)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main_parse(["--version"], {})
    assert info.value.code == 0
    assert capsys.readouterr().out == f"raftkvd {raftkv.__version__}\n"


def test_help(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as info:
        main_parse(["--help"], {})
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: raftkvd ")
    for title in ("cluster:", "client API:", "storage:", "raft timing:", "peer TLS", "logging:"):
        assert f"\n{title}" in out
    for flag, *_ in FLAGS:
        assert flag in out
    for flag in ("--join", "--peer-cert-file", "--peer-key-file", "--peer-trusted-ca-file"):
        assert flag in out
    # Every environment variable is named next to its flag.
    flat = " ".join(out.split())
    for env in ("RAFTKV_ID", "RAFTKV_CLUSTER", "RAFTKV_PORT", "RAFTKV_JOIN", "RAFTKV_DATA_DIR"):
        assert f"[{env}]" in flat
    assert "(default: 1.5MiB)" in flat
    assert "(default: ./raftkv-<id>)" in flat
    # The seed's commands, verbatim, in the examples.
    assert f"raftkvd --id 1 --cluster {CLUSTER3} --port 12380\n" in out
    assert (
        f"raftkvd --id 4 --cluster {CLUSTER3},http://127.0.0.1:42379 --port 42380 --join\n" in out
    )
    assert "curl -L http://127.0.0.1:12380/4 -XPOST -d http://127.0.0.1:42379\n" in out
    assert "curl -L http://127.0.0.1:12380/3 -XDELETE\n" in out


def test_help_examples_parse() -> None:
    """The examples in --help are valid settings."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), pytest.raises(SystemExit):
        main_parse(["--help"], {})
    commands = [
        line.split()[1:] for line in buffer.getvalue().splitlines() if "    raftkvd " in line
    ]
    assert len(commands) == 5
    for argv in commands:
        parse(*argv)
