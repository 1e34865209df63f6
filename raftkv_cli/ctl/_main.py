"""``main``: parse, run the command, and turn what went wrong into a message and a status."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO

from raftkv.client import (
    BadRequest,
    Client,
    ClientError,
    Compacted,
    Conflict,
    LeaseLost,
    NotFound,
    OutcomeUnknown,
    PreconditionFailed,
)

from .._backup import BackupError
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    PROG,
    ClientFactory,
    Context,
)
from ._output import Output
from ._parser import build_parser, parse

__all__ = ["main"]


def _default_client(endpoints: str, timeout: float) -> Client:
    return Client(endpoints, timeout=timeout)


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    client_factory: ClientFactory | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
) -> int:
    """Run one command; returns the exit status (the console script exits with it)."""
    environ = os.environ if environ is None else environ
    parser = build_parser(environ)
    try:
        args = parse(parser, sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = sys.stdout.buffer if stdout is None else stdout
    ctx = Context(
        args,
        Output(out, args.write_out),
        sys.stdin.buffer if stdin is None else stdin,
        environ,
        client_factory or _default_client,
    )
    try:
        code = args.run(ctx)
    except ClientError as exc:
        return _fail(exc, _exit_code(exc))
    except BackupError as exc:  # a damaged or truncated backup file
        return _fail(exc, EXIT_FAILED)
    except ValueError as exc:  # a bad endpoint or argument, found before anything was sent
        return _fail(exc, EXIT_USAGE)
    except KeyboardInterrupt:  # Ctrl-C: how a watch ends; no traceback
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (raftkv watch ... | head): we are done
        if stdout is None:
            _discard_stdout()
        return EXIT_OK
    finally:
        ctx.close()
        with contextlib.suppress(BrokenPipeError):
            out.flush()
    return EXIT_OK if code is None else code


def _exit_code(exc: ClientError) -> int:
    if isinstance(exc, NotFound | PreconditionFailed | Conflict | Compacted | LeaseLost):
        return EXIT_FAILED
    if isinstance(exc, BadRequest):
        return EXIT_USAGE
    return EXIT_UNAVAILABLE


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _fail(exc: Exception, code: int) -> int:
    message = str(exc)
    if isinstance(exc, OutcomeUnknown) and "outcome unknown" not in message:
        message = f"outcome unknown: {message}"
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code
