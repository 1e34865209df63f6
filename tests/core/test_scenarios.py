"""Every ``tests/testdata/*.txt`` scenario, run against the core through ``raftkv.testing``."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkv.testing import run_scenario

TESTDATA = Path(__file__).resolve().parent.parent / "testdata"
SCENARIOS = sorted(TESTDATA.glob("*.txt"))


def test_there_are_enough_scenarios() -> None:
    assert len(SCENARIOS) >= 45


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path, rewrite: bool) -> None:
    run_scenario(path, rewrite=rewrite)
