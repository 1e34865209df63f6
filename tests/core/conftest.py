"""Options for the core tests: ``--rewrite`` rewrites scenario files with the actual output.

``pytest --rewrite`` (the option is declared in tests/conftest.py) or ``RAFTKV_REWRITE=1``.
Review the diff before committing.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def rewrite(request: pytest.FixtureRequest) -> bool:
    try:
        flag = bool(request.config.getoption("--rewrite"))
    except ValueError:
        flag = False
    return flag or os.environ.get("RAFTKV_REWRITE", "") not in ("", "0")
