"""The command line: global options, then a command (each module registers its own)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import NoReturn, cast

import shtab

import raftkv

from . import _cluster, _coordination, _kv, _snapshot
from ._common import EXIT_USAGE, PROG, Commands, Context, add_command, seconds
from ._output import FORMATS

__all__ = ["DEFAULT_ENDPOINTS", "build_parser", "parse"]

DEFAULT_ENDPOINTS = "http://127.0.0.1:12380"

_EPILOG = """\
examples:
  raftkv put my-key hello
  raftkv get my-key
  echo -n 2 | raftkv put counter --if-revision 7      # compare-and-swap
  raftkv ls app/ --values
  raftkv -w table ls app/                            # also: -w json
  raftkv get my-key --rev 3                          # as of revision 3
  raftkv watch --prefix app/ --rev 1                 # every change since revision 1
  raftkv txn txn.json                                # a transaction (JSON, as POST /v1/txn)
  raftkv del --prefix app/
  raftkv compact 100
  raftkv lease grant 10                              # prints the lease id
  raftkv put svc/me up --lease 7587862072312423137
  raftkv lock jobs/nightly -- ./nightly.sh           # $RAFTKV_LOCK_TOKEN: the fencing token
  raftkv elect svc/primary 10.0.0.7                  # campaigns, then holds until Ctrl-C
  raftkv elect --listen svc/primary                  # prints each leader
  raftkv member list                                 # roles, applied indexes, health
  raftkv member add 4 http://127.0.0.1:42379
  raftkv leader transfer 2
  raftkv endpoint status --cluster -w table
  raftkv snapshot save backup.snap                   # restore: raftkv snapshot restore --help
  raftkv completion bash > /etc/bash_completion.d/raftkv

environment:
  RAFTKV_ENDPOINTS   default for --endpoints (comma-separated client URLs)

exit status:
  0 done, 1 not found / precondition failed / change refused / revision compacted /
  unhealthy endpoint / damaged backup, 2 bad usage, 3 cluster unavailable or outcome unknown,
  130 interrupted (Ctrl-C)"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="The raftkv command-line client.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {raftkv.__version__}")
    parser.add_argument(
        "--endpoints",
        default=environ.get("RAFTKV_ENDPOINTS") or DEFAULT_ENDPOINTS,
        metavar="URLS",
        help="comma-separated client URLs of cluster nodes, tried in turn "
        f"(default: $RAFTKV_ENDPOINTS or {DEFAULT_ENDPOINTS})",
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long one request may take (default: 10)",
    )
    parser.add_argument(
        "-w",
        "--write-out",
        choices=FORMATS,
        default="simple",
        help="output format of every command: simple (default), json or table",
    )
    commands = cast(
        "Commands",
        parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True),
    )
    _kv.register(commands)
    _coordination.register(commands)
    _cluster.register(commands)
    _snapshot.register(commands)
    completion = add_command(
        commands, "completion", _completion, help="print a shell completion script"
    )
    completion.add_argument("shell", choices=shtab.SUPPORTED_SHELLS)
    return parser


def _completion(ctx: Context) -> None:
    ctx.out.write(shtab.complete(build_parser(ctx.environ), shell=ctx.args.shell).encode())


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``raftkv lock NAME [--ttl S] -- COMMAND...``: what follows ``--`` is the command, options
    and all (argparse alone would take the command's options for ours)."""
    if "--" in argv:
        at = argv.index("--")
        head = parser.parse_known_args(argv[:at])[0]
        if head.command == "lock":
            args = parser.parse_args(argv[:at])
            args.cmd = [*args.cmd, *argv[at + 1 :]]
            return args
    return parser.parse_args(argv)
