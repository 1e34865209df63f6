"""Logging for the daemon: one line per record, as text or as JSON.

JSON lines carry the node's id, term and role on every record (``bind_node``), so that logs
collected from a whole cluster can be read together. Client libraries' per-request lines
(httpx's "HTTP Request: ...", used to forward requests to the leader) are off below WARNING.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

__all__ = ["bind_node", "configure_logging"]

_QUIET = ("httpx", "httpcore", "hpack")

# What every JSON line says of the node: set once the node runs (bind_node).
_node_fields: Callable[[], dict[str, object]] | None = None


def bind_node(fields: Callable[[], dict[str, object]] | None) -> None:
    """From now on, JSON lines carry ``fields()`` (None: nothing)."""
    global _node_fields  # noqa: PLW0603 - one process, one node
    _node_fields = fields


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if _node_fields is not None:
            entry.update(_node_fields())
        entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
