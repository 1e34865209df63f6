"""``raftkvd``: the raftkv key-value daemon.

Exit codes: 0 stopped by a signal or removed from the cluster; 1 the node failed while running
(a failed fsync, a corrupt data directory found on start); 2 bad flags or a data directory that
belongs to another node or cluster.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import trio

import raftkv

from ._logging import configure_logging
from ._settings import SettingsError, main_parse

__all__ = ["main"]

log = logging.getLogger("raftkv.daemon")


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, as nurseries wrap them."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _explain(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, one-line message) for a failure we expect; None for a bug."""
    for leaf in _leaves(exc):
        if isinstance(leaf, SettingsError):
            return 2, f"raftkvd: error: {leaf}"
        if isinstance(leaf, raftkv.StorageError):
            return 1, f"raftkvd: error: storage: {leaf}"
        if isinstance(leaf, OSError):
            return 1, f"raftkvd: error: {leaf.strerror or leaf}" + (
                f" ({leaf.filename})" if leaf.filename else ""
            )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    settings = main_parse(argv)
    configure_logging(settings.log_level, settings.log_format)
    from ._serve import serve  # noqa: PLC0415 - keep --help and --version fast

    try:
        trio.run(serve, settings)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        explained = _explain(exc)
        if explained is None:
            raise
        code, message = explained
        if settings.log_format == "json":
            log.critical("%s", message)  # every line on stderr stays JSON
        else:
            print(message, file=sys.stderr)  # once, as the last line
        return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
