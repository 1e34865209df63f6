"""The client's docstring examples run, as written, against a live node on loopback (the
example's endpoints replaced by the node's URL), and print what they show."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trio

sys.path.insert(0, str(Path(__file__).parent.parent / "http"))
from _members import open_members, serve_members

import raftkv.client
import raftkv.client._async
import raftkv.client._sync

EXAMPLE_ENDPOINTS = ("http://127.0.0.1:12380,http://127.0.0.1:22380", "http://127.0.0.1:12380")


def _run_examples(module: ModuleType, url: str) -> tuple[int, int, str]:
    """(examples tried, failures, the report) of ``module``'s docstrings against ``url``."""
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(module, module.__name__):
        for example in test.examples:
            for endpoints in EXAMPLE_ENDPOINTS:
                example.source = example.source.replace(endpoints, url)
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    return results.attempted, results.failed, "".join(report)


@pytest.mark.parametrize(
    "module",
    [raftkv.client, raftkv.client._sync, raftkv.client._async],
    ids=lambda m: m.__name__,
)
async def test_docstring_examples_run_as_written(module: ModuleType) -> None:
    async with open_members(1) as members, serve_members(members) as urls:
        attempted, failed, report = await trio.to_thread.run_sync(_run_examples, module, urls[0])
    assert attempted >= 1
    assert failed == 0, report
