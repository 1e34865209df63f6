"""What every command shares: exit statuses, argument types, and the run's context."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, TypeAlias, TypeVar

from raftkv.client import Client

from ._output import FORMATS, Output

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "PROG",
    "ClientFactory",
    "Commands",
    "Context",
    "add_command",
    "arg_bytes",
    "checked",
    "positive",
    "revision",
    "seconds",
]

T = TypeVar("T")

PROG = "raftkv"
EXIT_OK = 0
EXIT_FAILED = 1  # not found, precondition failed, membership change refused, compacted
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

# What a command group registers its commands on (argparse's subparsers).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# (endpoints, timeout in seconds) -> a client; tests pass one on a mock transport.
ClientFactory = Callable[[str, float], Client]


@dataclass
class Context:
    """One run of a command: its arguments, where it writes, and its clients (made on first
    use, closed when the run ends)."""

    args: argparse.Namespace
    out: Output
    stdin: IO[bytes]
    environ: Mapping[str, str]
    factory: ClientFactory
    _clients: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _client: Client | None = None

    @property
    def client(self) -> Client:
        """The client of ``--endpoints`` (failing over between them)."""
        if self._client is None:
            self._client = self.client_for(self.args.endpoints)
        return self._client

    def client_for(self, endpoints: str) -> Client:
        """A client of these endpoints only, closed with the run."""
        return self._clients.enter_context(self.factory(endpoints, self.args.timeout))

    def close(self) -> None:
        self._clients.close()


def arg_bytes(text: str) -> bytes:
    return os.fsencode(text)  # the bytes the shell passed, even if they are not UTF-8


def revision(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a revision (an integer >= 0), got {text!r}")
    return int(text)


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def add_command(
    commands: Commands,
    name: str,
    run: Callable[[Context], int | None],
    **kwargs: object,
) -> argparse.ArgumentParser:
    """A command (or an action of one) that ``run`` carries out; it takes ``-w`` too, so that
    the format may follow the command as well as precede it."""
    parser = commands.add_parser(name, **kwargs)  # type: ignore[arg-type]
    parser.add_argument(
        "-w",
        "--write-out",
        choices=FORMATS,
        default=argparse.SUPPRESS,
        help="output format: simple (the default), json or table",
    )
    parser.set_defaults(run=run)
    return parser


def checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse type: its ValueError's message becomes the usage error's."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert
