"""``raftkvd``'s settings: command-line flags, ``RAFTKV_*`` environment variables, defaults.

Precedence: a flag, else its environment variable (an empty one counts as unset), else the
default. Every value is checked here, so the daemon starts from a ``Settings`` that can work or
stops with a one-line ``raftkvd: error: ...`` and exit code 2 (``main_parse``), never a traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

import raftkv
from raftkv.kv import DEFAULT_KEEP_REVISIONS, Retention, parse_retention
from raftkv.transport import normalize_peer_url

__all__ = [
    "DEFAULT_CLUSTER_TOKEN",
    "LOG_LEVELS",
    "PROG",
    "Settings",
    "SettingsError",
    "build_parser",
    "main_parse",
    "parse_cluster",
    "parse_peer_url",
    "parse_settings",
    "parse_token",
    "usage_error",
]

PROG = "raftkvd"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MAX_KEY_LIMIT = 64 * 1024  # a key travels in the request line; servers cap those near 16 KiB
_MAX_VALUE_LIMIT = 64 * 1024 * 1024  # one value is one Raft entry, copied to every peer
_CLUSTER_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SettingsError(ValueError):
    """A setting that cannot work; the message is one line, fit for ``raftkvd: error: ...``."""


@dataclass(frozen=True, slots=True)
class Settings:
    node_id: int  # --id: 1-based index into `cluster`
    cluster: tuple[str, ...]  # peer URLs, normalised to scheme://host:port
    port: int  # the client HTTP port
    host: str  # the client HTTP bind address
    join: bool
    data_dir: Path
    snapshot_count: int
    catch_up_entries: int
    auto_compaction_retention: Retention
    wal_segment_bytes: int
    tick_ms: int
    election_ticks: int
    heartbeat_ticks: int
    max_key_bytes: int
    max_value_bytes: int
    request_timeout: float  # seconds
    bind_retry: float  # seconds to keep retrying a busy listening port
    log_level: str  # one of LOG_LEVELS
    log_format: Literal["text", "json"]
    cluster_token: str | None  # given explicitly; see `cluster_id`
    peer_cert_file: Path | None
    peer_key_file: Path | None
    peer_trusted_ca_file: Path | None
    client_cert_file: Path | None  # --client-cert: TLS on the client port
    client_key_file: Path | None
    client_ca_file: Path | None  # --client-ca: clients must present a certificate it signed
    auth_token_ttl: int  # seconds a token from POST /v1/auth/token stays valid

    @property
    def peer_url(self) -> str:
        """This node's own peer URL."""
        return self.cluster[self.node_id - 1]

    @property
    def peers(self) -> dict[int, str]:
        """Node id -> peer URL, for every member of the initial cluster."""
        return {i: url for i, url in enumerate(self.cluster, start=1)}

    @property
    def tick_interval(self) -> float:
        """Seconds per Raft tick."""
        return self.tick_ms / 1000

    @property
    def peer_tls(self) -> bool:
        return self.peer_cert_file is not None

    @property
    def cluster_id(self) -> str:
        """The cluster's name in peer handshakes and in the data directory.

        ``--cluster-token`` if given, else ``DEFAULT_CLUSTER_TOKEN`` (as etcd's
        ``--initial-cluster-token``). It cannot be derived from ``--cluster``: a joining node's
        list is longer than the founders', yet it must name the same cluster in its first
        handshake. Give every cluster its own token to keep clusters from talking to each other.
        """
        return self.cluster_token if self.cluster_token is not None else DEFAULT_CLUSTER_TOKEN


DEFAULT_CLUSTER_TOKEN = raftkv.DEFAULT_CLUSTER_ID


# -- value parsers: each raises SettingsError with what was wrong -------------------------------


def _int(lo: int, hi: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise SettingsError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise SettingsError(f"must be {bounds}, got {value}")
        return value

    return parse


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6}
_SIZE_UNITS |= {"mib": 1024**2, "g": 10**9, "gb": 10**9, "gib": 1024**3}


def _size(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
        unit = _SIZE_UNITS.get(m.group(2).lower()) if m else None
        if m is None or unit is None:
            raise SettingsError(
                f"expected a size in bytes such as 1024, 64KiB or 1.5MiB, got {text!r}"
            )
        value = math.floor(float(m.group(1)) * unit)
        if not lo <= value <= hi:
            raise SettingsError(f"must be between {lo} and {hi} bytes, got {value}")
        return value

    return parse


def _duration(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", text)
    if m is None:
        raise SettingsError(f"expected a duration such as 5, 2.5s or 500ms, got {text!r}")
    value = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    if not 0 < value <= 24 * 3600:
        raise SettingsError(f"must be more than 0 and at most a day, got {text!r}")
    return value


def _duration_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0s", "0ms") else _duration(text)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"expected true/false, 1/0, yes/no or on/off, got {text!r}")


def _choice(*choices: str, upper: bool = False) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().upper() if upper else text.strip().lower()
        if value not in choices:
            raise SettingsError(
                f"expected one of {', '.join(c.lower() for c in choices)}, got {text!r}"
            )
        return value

    return parse


def _host(text: str) -> str:
    value = text.strip()
    if not value or any(c.isspace() for c in value) or "/" in value:
        raise SettingsError(f"expected a host name or IP address, got {text!r}")
    return value


def parse_token(text: str) -> str:
    if not _CLUSTER_TOKEN.fullmatch(text):
        raise SettingsError(
            f"expected 1-64 letters, digits, '.', '_' or '-' (not first), got {text!r}"
        )
    return text


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise SettingsError(f"no such file: {text}")
    return path


def _path(text: str) -> Path:
    if not text.strip():
        raise SettingsError("expected a path")
    return Path(text)


def parse_peer_url(text: str) -> str:
    """A peer URL normalised to ``scheme://host:port`` (lower-case scheme and host)."""
    try:
        return normalize_peer_url(text.strip())
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def _retention(text: str) -> Retention:
    try:
        return parse_retention(text)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def parse_cluster(text: str) -> tuple[str, ...]:
    urls = [u.strip() for u in text.split(",")]
    if not text.strip() or any(not u for u in urls):
        raise SettingsError(f"expected comma-separated peer URLs, got {text!r}")
    cluster = tuple(parse_peer_url(u) for u in urls)
    seen: set[str] = set()
    for url in cluster:
        if url in seen:
            raise SettingsError(f"peer URL {url} is listed twice")
        seen.add(url)
    return cluster


# -- the options --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Option:
    flags: tuple[str, ...]
    dest: str
    parse: Callable[[str], Any]
    default: Any  # None: computed from the other settings (see parse_settings)
    help: str
    metavar: str | None = None
    boolean: bool = False
    shown: str | None = None  # the default as --help shows it, when str(default) reads badly

    @property
    def env(self) -> str:
        return "RAFTKV_" + self.flags[0].removeprefix("--").replace("-", "_").upper()


_GROUPS: dict[str, list[_Option]] = {
    "cluster": [
        _Option(
            ("--id",),
            "node_id",
            _int(1),
            1,
            "this node's id: its 1-based position in --cluster",
            "N",
        ),
        _Option(
            ("--cluster",),
            "cluster",
            parse_cluster,
            ("http://127.0.0.1:12379",),
            "comma-separated peer (Raft) URLs of every member, in id order",
            "URLS",
        ),
        _Option(
            ("--join",),
            "join",
            _bool,
            False,
            "join a running cluster that this node was added to (POST /<id>), instead of "
            "founding one with --cluster",
            boolean=True,
        ),
        _Option(
            ("--cluster-token", "--cluster-id"),
            "cluster_token",
            parse_token,
            None,
            "the cluster's name, checked when peers connect and against --data-dir; give every "
            f"cluster its own (default: {DEFAULT_CLUSTER_TOKEN}, the same on every member)",
            "TOKEN",
        ),
    ],
    "client API": [
        _Option(
            ("--host",),
            "host",
            _host,
            "127.0.0.1",
            "address to listen on for clients; 0.0.0.0 or :: for every interface",
            "ADDR",
        ),
        _Option(("--port",), "port", _int(1, 65535), 12380, "client HTTP port", "PORT"),
        _Option(
            ("--max-key-bytes",),
            "max_key_bytes",
            _size(1, _MAX_KEY_LIMIT),
            1024,
            "longest key accepted, in bytes; longer ones get 400",
            "SIZE",
        ),
        _Option(
            ("--max-value-bytes",),
            "max_value_bytes",
            _size(1, _MAX_VALUE_LIMIT),
            1536 * 1024,
            "largest value accepted, in bytes or with a KiB, MiB, KB or MB suffix; larger "
            "ones get 413",
            "SIZE",
            shown="1.5MiB",
        ),
        _Option(
            ("--request-timeout",),
            "request_timeout",
            _duration,
            5.0,
            "how long a request waits for commit or a read barrier before answering 504 "
            "(write: outcome unknown) or 503",
            "SECONDS",
        ),
        _Option(
            ("--bind-retry",),
            "bind_retry",
            _duration_or_zero,
            60.0,
            "how long to keep retrying a client or peer port that is busy at start (a closed "
            "connection may hold it for a minute); 0 to fail at once",
            "SECONDS",
        ),
    ],
    "storage": [
        _Option(
            ("--data-dir",),
            "data_dir",
            _path,
            None,
            "where the WAL and snapshots live; data there wins over --cluster and --join",
            "DIR",
            shown="./raftkv-<id>",
        ),
        _Option(
            ("--snapshot-count",),
            "snapshot_count",
            _int(1),
            10_000,
            "applied entries at least between snapshots (the log must also weigh half the "
            "last snapshot; at 16 MiB one is taken whatever the count)",
            "N",
        ),
        _Option(
            ("--catch-up-entries",),
            "catch_up_entries",
            _int(0),
            5_000,
            "entries kept after a snapshot for slow followers to catch up from",
            "N",
        ),
        _Option(
            ("--wal-segment-size",),
            "wal_segment_bytes",
            _size(4096, 1 << 40),
            64 << 20,
            "size of each WAL segment file, preallocated when the disk has room",
            "SIZE",
            shown="64MiB",
        ),
        _Option(
            ("--auto-compaction-retention",),
            "auto_compaction_retention",
            _retention,
            Retention(DEFAULT_KEEP_REVISIONS),
            "history kept for reads at past revisions and watches: a number of revisions, an "
            "age (90s, 30m, 1h, 7d), or 0 to keep everything",
            "KEEP",
            shown=str(DEFAULT_KEEP_REVISIONS),
        ),
    ],
    "raft timing": [
        _Option(("--tick-ms",), "tick_ms", _int(1, 60_000), 100, "milliseconds per tick", "MS"),
        _Option(
            ("--election-ticks",),
            "election_ticks",
            _int(2),
            10,
            "ticks without a leader before an election (randomised up to twice that)",
            "N",
        ),
        _Option(
            ("--heartbeat-ticks",),
            "heartbeat_ticks",
            _int(1),
            1,
            "ticks between leader heartbeats, fewer than the election ticks",
            "N",
        ),
    ],
    "peer TLS (all peers use TLS when a certificate is given)": [
        _Option(
            ("--peer-cert-file",),
            "peer_cert_file",
            _existing_file,
            None,
            "this node's certificate (PEM) for peer connections",
            "FILE",
        ),
        _Option(
            ("--peer-key-file",),
            "peer_key_file",
            _existing_file,
            None,
            "the private key (PEM) of --peer-cert-file",
            "FILE",
        ),
        _Option(
            ("--peer-trusted-ca-file",),
            "peer_trusted_ca_file",
            _existing_file,
            None,
            "CA bundle (PEM) that peer certificates must chain to (default: the system's)",
            "FILE",
        ),
    ],
    "client TLS and auth (the client port speaks https when a certificate is given)": [
        _Option(
            ("--client-cert",),
            "client_cert_file",
            _existing_file,
            None,
            "this node's certificate (PEM) for the client port",
            "FILE",
        ),
        _Option(
            ("--client-key",),
            "client_key_file",
            _existing_file,
            None,
            "the private key (PEM) of --client-cert",
            "FILE",
        ),
        _Option(
            ("--client-ca",),
            "client_ca_file",
            _existing_file,
            None,
            "CA bundle (PEM): clients must present a certificate signed by it (its common name "
            "is their user once auth is enabled)",
            "FILE",
        ),
        _Option(
            ("--auth-token-ttl",),
            "auth_token_ttl",
            _int(1, 86_400),
            300,
            "seconds an auth token stays valid",
            "S",
        ),
    ],
    "logging": [
        _Option(
            ("--log-level",),
            "log_level",
            _choice(*LOG_LEVELS, upper=True),
            "INFO",
            "debug, info, warning, error or critical",
            "LEVEL",
        ),
        _Option(
            ("--log-format",),
            "log_format",
            _choice("text", "json"),
            "text",
            "text for people, json (one object per line) for log collectors",
            "FORMAT",
        ),
    ],
}
_OPTIONS = [option for options in _GROUPS.values() for option in options]

_DESCRIPTION = """\
raftkvd: a node of raftkv, a strongly consistent key-value store on Raft.
Writes are acknowledged once committed on a quorum; reads are linearizable."""

_CLUSTER3 = "http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379"
_EPILOG = f"""\
examples:
  a single node:
    raftkvd --id 1 --cluster http://127.0.0.1:12379 --port 12380
    curl -L http://127.0.0.1:12380/my-key -XPUT -d hello
    curl -L http://127.0.0.1:12380/my-key

  three nodes (one command each):
    raftkvd --id 1 --cluster {_CLUSTER3} --port 12380
    raftkvd --id 2 --cluster {_CLUSTER3} --port 22380
    raftkvd --id 3 --cluster {_CLUSTER3} --port 32380

  add node 4, then start it with --join:
    curl -L http://127.0.0.1:12380/4 -XPOST -d http://127.0.0.1:42379
    raftkvd --id 4 --cluster {_CLUSTER3},http://127.0.0.1:42379 --port 42380 --join

  remove node 3 (it exits by itself):
    curl -L http://127.0.0.1:12380/3 -XDELETE

environment:
  Every option can be set with RAFTKV_ and its name in capitals, e.g. RAFTKV_PORT=12380,
  RAFTKV_JOIN=true. A flag on the command line wins over the environment.

exit status: 0 when stopped or removed from the cluster, 2 for bad settings."""


class _Parser(argparse.ArgumentParser):
    """Raises SettingsError instead of printing and exiting, so callers choose what to do."""

    def error(self, message: str) -> NoReturn:
        raise SettingsError(message)


def _flag_type(option: _Option) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return option.parse(text)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = option.dest  # argparse names the type in some of its messages
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``raftkvd`` argument parser (defaults are applied by ``parse_settings``)."""
    parser = _Parser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {raftkv.__version__}")
    for title, options in _GROUPS.items():
        group = parser.add_argument_group(title)
        for option in options:
            shown = option.shown or _show(option.default)
            shown = f" (default: {shown})" if shown else ""
            help_text = f"{option.help}{shown} [{option.env}]"
            if option.boolean:
                group.add_argument(
                    *option.flags,
                    dest=option.dest,
                    action=argparse.BooleanOptionalAction,
                    default=None,
                    help=help_text,
                )
            else:
                group.add_argument(
                    *option.flags,
                    dest=option.dest,
                    type=_flag_type(option),
                    default=None,
                    metavar=option.metavar,
                    help=help_text,
                )
    return parser


def _show(default: Any) -> str:
    if default is None:
        return ""
    if isinstance(default, tuple):
        return ",".join(default)
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return f"{default:g}s"
    return str(default).lower()


def parse_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from flags, then environment, then defaults; ``SettingsError`` if they cannot work.

    ``--help`` and ``--version`` print and raise ``SystemExit(0)``, as argparse does.
    """
    if environ is None:
        environ = os.environ
    namespace = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    values: dict[str, Any] = {}
    for option in _OPTIONS:
        value = getattr(namespace, option.dest)
        if value is None and environ.get(option.env, "").strip():
            try:
                value = option.parse(environ[option.env])
            except SettingsError as exc:
                raise SettingsError(f"environment variable {option.env}: {exc}") from None
        values[option.dest] = option.default if value is None else value
    if values["data_dir"] is None:
        values["data_dir"] = Path(f"raftkv-{values['node_id']}")
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    """The rules that involve more than one setting."""
    if s.node_id > len(s.cluster):
        raise SettingsError(
            f"--id {s.node_id} is out of range: --cluster lists {len(s.cluster)} peer URL(s)"
        )
    if s.heartbeat_ticks >= s.election_ticks:
        raise SettingsError(
            f"--heartbeat-ticks ({s.heartbeat_ticks}) must be less than "
            f"--election-ticks ({s.election_ticks})"
        )
    own = urlsplit(s.peer_url)
    if own.port == s.port and _same_host(own.hostname or "", s.host):
        raise SettingsError(f"--port {s.port} is this node's peer port (in {s.peer_url})")
    if (s.peer_cert_file is None) != (s.peer_key_file is None):
        raise SettingsError("--peer-cert-file and --peer-key-file go together")
    if s.peer_trusted_ca_file is not None and s.peer_cert_file is None:
        raise SettingsError("--peer-trusted-ca-file needs --peer-cert-file and --peer-key-file")
    if s.peer_cert_file is None and any(u.startswith("https:") for u in s.cluster):
        raise SettingsError("https peer URLs need --peer-cert-file and --peer-key-file")
    if (s.client_cert_file is None) != (s.client_key_file is None):
        raise SettingsError("--client-cert and --client-key go together")
    if s.client_ca_file is not None and s.client_cert_file is None:
        raise SettingsError("--client-ca needs --client-cert and --client-key")


def _same_host(a: str, b: str) -> bool:
    """Whether two listeners on these hosts could collide on one port."""
    a, b = a.strip("[]").lower(), b.strip("[]").lower()
    return a == b or _unspecified(a) or _unspecified(b)


def _unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def usage_error(message: str) -> NoReturn:
    """Print ``raftkvd: error: <message>`` on one line to stderr and exit 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main_parse(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """``parse_settings`` for the daemon: any error ends the process with ``usage_error``."""
    try:
        return parse_settings(argv, environ)
    except SettingsError as exc:
        usage_error(str(exc))
