"""``raftkv``: the command-line client (get, put, del, ls, watch, txn, compact, lease, lock,
elect, member, leader, endpoint, status, snapshot, completion).

Every command takes ``-w simple|json|table`` (``raftkv_cli.ctl._output``), before or after it.

Exit status: 0 done; 1 not found, precondition failed, change refused, revision compacted, a
lease (a lock, leadership) lost, an unhealthy endpoint or a damaged backup; 2 bad usage
(including a request the server calls bad, 400/413); 3 cluster unavailable, outcome unknown or
other failure; 130 interrupted (Ctrl-C, the way ``raftkv watch`` and ``raftkv elect`` end).
``raftkv lock`` exits with its command's status.

Modules: ``_parser`` (the command line), ``_main`` (running a command, errors to exit
statuses), ``_output`` (the formats), and one module per group of commands: ``_kv``,
``_coordination``, ``_cluster``, ``_snapshot``.
"""

from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ClientFactory,
)
from ._main import main
from ._parser import build_parser

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "ClientFactory",
    "build_parser",
    "main",
]
