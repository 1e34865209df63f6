"""raftkv.testing: the simulation test bed (public, like ``trio.testing``).

* ``Cluster``: a pure, seedable simulator of N ``raftkv.core.RawNode`` servers and the network
  between them (deliver any message, drop, duplicate, partition, crash, restart, ...), which
  records a transcript in the scenario format.
* ``handle_ready``: one Ready handled by the contract (or in the runtime's order, with
  ``Ready.messages`` sent before persisting), for any harness that drives ``RawNode``s.
* ``InvariantChecker``: Raft's safety properties, checked after every simulator step.
* ``run_scenario`` / ``replay``: data-driven scenario files (``cmd args`` / ``----`` / output).
* ``check_linearizable`` / ``check_stale_reads``: client histories against a register model
  (writes, compare-and-sets, multi-key transactions (``Txn``), reads); ``check_locks``: the
  lock workload's tenures and fencing tokens against the committed log (``CommittedLog``);
  ``Watcher``: a simulated watch.
* ``RandomSchedule``: random fault schedules over a ``Cluster``, for sweeps and Hypothesis.
* ``open_local_cluster``: real nodes in one process on a memory network, for tests and examples.

See ``docs/testing.md``.
"""

from ._cluster import ClientOp, Cluster, LivenessFailure, SimNode, StabilizeError
from ._committed import CommittedLog
from ._datadriven import Arg, DataDrivenError, TestCase, parse_file, parse_text, run_file
from ._driver import ReadyObserver, handle_ready, persist
from ._invariants import InvariantChecker, InvariantViolation
from ._lincheck import (
    LinearizabilityViolation,
    Op,
    OpKind,
    StaleRead,
    check_linearizable,
    check_stale_reads,
    find_linearization,
)
from ._local import open_local_cluster
from ._lockcheck import LockViolation, check_locks
from ._scenario import ScenarioRunner, replay, run_scenario
from ._schedule import SWEEP_CONFIGS, RandomSchedule, sweep_cluster
from ._statemachine import KVStateMachine, Txn
from ._watchers import Watcher

__all__ = [
    "SWEEP_CONFIGS",
    "Arg",
    "ClientOp",
    "Cluster",
    "CommittedLog",
    "DataDrivenError",
    "InvariantChecker",
    "InvariantViolation",
    "KVStateMachine",
    "LinearizabilityViolation",
    "LivenessFailure",
    "LockViolation",
    "Op",
    "OpKind",
    "RandomSchedule",
    "ReadyObserver",
    "ScenarioRunner",
    "SimNode",
    "StabilizeError",
    "StaleRead",
    "TestCase",
    "Txn",
    "Watcher",
    "check_linearizable",
    "check_locks",
    "check_stale_reads",
    "find_linearization",
    "handle_ready",
    "open_local_cluster",
    "parse_file",
    "parse_text",
    "persist",
    "replay",
    "run_file",
    "run_scenario",
    "sweep_cluster",
]
