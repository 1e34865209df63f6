"""Fixtures of the transport suites."""

from __future__ import annotations

import pytest
import trio
from transport_helpers import Harness


@pytest.fixture(params=["memory", "tcp"])
def harness(request: pytest.FixtureRequest, nursery: trio.Nursery) -> Harness:
    """A harness for each transport: the conformance suite runs once per kind."""
    return Harness(request.param, nursery)
