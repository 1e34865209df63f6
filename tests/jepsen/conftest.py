"""Fixtures and options of the real-process suites.

The fault suite (``test_faults.py``) takes its campaign options here::

    pytest tests/jepsen --nemesis partition,bridge,oneway,netem,pause,kill,churn,disk \\
        --seconds 300 --runs 10 --seed 7 --results-dir /tmp/jepsen \\
        --workload register,set,watch,lock

Without ``--nemesis`` it runs the short version of each family that CI runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.conftest import cluster_factory

__all__ = ["cluster_factory"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("jepsen", "raftkv fault suite (tests/jepsen)")
    group.addoption(
        "--nemesis",
        default=None,
        help="comma-separated fault families for a campaign run: "
        "partition,bridge,oneway,netem,pause,kill,churn,disk (or all)",
    )
    group.addoption("--seconds", type=float, default=60.0, help="seconds per campaign run")
    group.addoption("--runs", type=int, default=1, help="campaign runs (seeds seed..seed+runs-1)")
    group.addoption("--seed", type=int, default=None, help="first seed (default: random)")
    group.addoption(
        "--results-dir",
        default=None,
        help="where each run writes history, nemesis timeline, logs and latency.png "
        "(default: a new temporary directory)",
    )
    group.addoption("--nodes", type=int, default=5, help="cluster size of a campaign run")
    group.addoption(
        "--workload",
        default="register,set",
        help="comma-separated workloads of a campaign run: register,set,watch,lock (or all; "
        "default register,set)",
    )


def option(config: pytest.Config, name: str, default: object = None) -> object:
    """An option of this file; its default when the whole tree runs (options not registered)."""
    try:
        return config.getoption(name)
    except ValueError:
        return default


@pytest.fixture(scope="session")
def results_root(request: pytest.FixtureRequest) -> Path:
    given = option(request.config, "--results-dir")
    path = Path(str(given)) if given else Path(tempfile.mkdtemp(prefix="raftkv-jepsen-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def netns_session() -> Iterator[None]:
    """Root only; clears what a crashed earlier run left, and everything of ours at the end."""
    from jepsen import _disk, _netns

    reason = _netns.why_unusable()
    if reason:
        pytest.skip(reason)
    _netns.remove_stale()
    _disk.remove_stale_mounts()
    try:
        yield
    finally:
        _disk.remove_stale_mounts(own_pid=os.getpid())
        _netns.remove_stale(own_pid=os.getpid())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per fault-suite run: verdict, seed, results directory, how to rerun it."""
    from jepsen._report import campaign
    from jepsen._runner import RESULT_ROOTS, SUMMARIES

    if SUMMARIES:
        terminalreporter.section("raftkv fault suite")
        for line in SUMMARIES:
            terminalreporter.write_line(line)
        for root in sorted(RESULT_ROOTS):
            terminalreporter.write_line(f"figures of {root}:")
            for key, value in campaign(root).items():
                terminalreporter.write_line(f"  {key}: {value}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Also after Ctrl-C: nothing of this process's runs survives it."""
    if os.geteuid() == 0:
        from jepsen import _disk, _netns

        _disk.remove_stale_mounts(own_pid=os.getpid())
        _netns.remove_stale(own_pid=os.getpid())
