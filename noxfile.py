"""Developer sessions: ``nox -s lint typecheck tests`` before every push.

Long runs live in their own sessions (simulate, bench, e2e); CI runs short versions of them as
part of the test suite.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "architecture", "tests"]
nox.options.reuse_existing_virtualenvs = True

PACKAGES = ["raftkv", "raftkv_cli"]
SOURCES = ["raftkv", "raftkv_cli", "tests", "bench", "noxfile.py"]
JEPSEN_DEFAULT_CAMPAIGN = [
    *("--nemesis", "all", "--workload", "all", "--seconds", "300", "--runs", "10"),
]


def _install(session: nox.Session) -> None:
    session.install("-e", ".[test]")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (Hypothesis profile ``ci``)."""
    _install(session)
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def typecheck(session: nox.Session) -> None:
    _install(session)
    session.run("mypy", "--strict", *PACKAGES)


@nox.session
def architecture(session: nox.Session) -> None:
    """import-linter: the core stays sans-I/O, the library never imports the daemon."""
    _install(session)
    session.run("lint-imports")


@nox.session
def simulate(session: nox.Session) -> None:
    """Thorough Hypothesis simulation: >= 10 000 examples (takes a while)."""
    _install(session)
    session.run(
        "pytest",
        "tests/core",
        *session.posargs,
        env={"HYPOTHESIS_PROFILE": "thorough", "RAFTKV_SIM_EXAMPLES": "10000"},
    )


@nox.session
def e2e(session: nox.Session) -> None:
    """End-to-end tests with real raftkvd processes."""
    _install(session)
    session.run("pytest", "tests/e2e", *session.posargs)


@nox.session
def jepsen(session: nox.Session) -> None:
    """The fault suite (as root): raftkvd in network namespaces under every nemesis family.

    ``nox -s jepsen -- --nemesis partition,bridge,oneway,netem,pause,kill,churn,disk
    --seconds 300 --runs N --seed S [--workload register,set,watch,lock] [--results-dir DIR]``
    (``--workload`` defaults to register,set; ``all`` for every workload); without arguments,
    JEPSEN_DEFAULT_CAMPAIGN. Each run's summary line names its seed and results directory.
    """
    _install(session)
    session.run(
        "pytest",
        "tests/jepsen",
        *(session.posargs or JEPSEN_DEFAULT_CAMPAIGN),
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: ``nox -s bench -- core|storage|node|http|watch|lease|gc|scale``."""
    _install(session)
    session.run("python", "bench/run.py", *session.posargs)
