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
from ._settings import SettingsError, main_parse, usage_error

__all__ = ["main"]

log = logging.getLogger("raftkv.daemon")


def main(argv: Sequence[str] | None = None) -> int:
    settings = main_parse(argv)
    configure_logging(settings.log_level, settings.log_format)
    from ._serve import serve  # noqa: PLC0415 - keep --help and --version fast

    try:
        trio.run(serve, settings)
    except SettingsError as exc:
        usage_error(str(exc))
    except raftkv.StorageError as exc:
        log.critical("storage error: %s", exc)
        print(f"raftkvd: storage error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"raftkvd: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
