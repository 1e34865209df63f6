"""A short run of every benchmark that needs nothing outside the project (CI's "short version").

Figures are not asserted (timings are never test outcomes); the runs must finish and print them.
The HTTP benchmark needs etcd and wrk and runs only in ``nox -s bench -- http``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "bench" / "run.py"


@pytest.mark.parametrize(
    ("suite", "expect"),
    [
        ("core", "committed entries/s"),
        ("storage", "entries/s"),
        ("node", "proposals/s"),
        ("lease", "keep-alives/s"),
    ],
)
def test_benchmark_runs(suite: str, expect: str, tmp_path: Path) -> None:
    extra = ["--dir", str(tmp_path), "--recovery-entries", "20000"] if suite == "storage" else []
    if suite == "lease":
        extra = ["--no-etcd"]  # etcd runs in nox -s bench -- lease
    r = subprocess.run(
        [sys.executable, str(RUN), suite, "--quick", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert expect in r.stdout, r.stdout[-3000:]


def test_the_watch_benchmark_runs_without_etcd_or_wrk() -> None:
    args = ["--systems", "raftkv", "--watchers", "5", "--rate", "50", "--seconds", "1"]
    args += ["--wrk-seconds", "0", "--history-revisions", "2000"]
    r = subprocess.run(
        [sys.executable, str(RUN), "watch", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "bytes per retained revision" in r.stdout and "p99_ms" in r.stdout, r.stdout[-3000:]
