"""The curl examples of docs/api.md are true: each block marked ``<!-- test -->`` runs, in
order, with ``sh`` against a fresh node served by a real Hypercorn, and prints exactly the
``text`` block that follows it.

After an intended change of the API's answers, ``RAFTKV_REWRITE=1 pytest
tests/http/test_api_docs.py`` writes the actual outputs into docs/api.md: read the diff.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from _nodes import open_api, serve

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
MARK = "<!-- test -->"
DOCUMENTED_URL = "http://127.0.0.1:12380"


@dataclass
class Example:
    line: int  # of the command block's first line, 1-based
    command: str
    expected: str
    output_lines: tuple[int, int]  # the expected block's content: [start, end) line indexes


def examples(lines: list[str]) -> list[Example]:
    out = []
    for i, line in enumerate(lines):
        if line.strip() != MARK:
            continue
        assert lines[i + 1] == "```sh", f"api.md:{i + 2}: a tested example is a ```sh block"
        end = lines.index("```", i + 2)
        assert lines[end + 1] == "```text", f"api.md:{end + 2}: its output follows, as ```text"
        stop = lines.index("```", end + 2)
        out.append(
            Example(
                i + 2,
                "\n".join(lines[i + 2 : end]),
                "".join(f"{text}\n" for text in lines[end + 2 : stop]),
                (end + 2, stop),
            )
        )
    return out


def test_the_examples_are_found() -> None:
    found = examples(DOC.read_text().splitlines())
    assert len(found) >= 5
    assert any("/v1/watch" in e.command for e in found)
    assert any("/v1/txn" in e.command for e in found)
    assert any("/v1/compact" in e.command for e in found)


async def test_the_curl_examples_print_what_the_docs_say() -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    lines = DOC.read_text().splitlines()
    found = examples(lines)
    outputs = []
    async with open_api(progress_interval=0.05) as api, serve(api) as url:
        for example in found:
            with trio.fail_after(20):
                result = await trio.run_process(
                    ["sh", "-c", example.command.replace(DOCUMENTED_URL, url)],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
            assert result.returncode == 0, (example.line, result.stderr.decode())
            outputs.append(result.stdout.decode())
    if os.environ.get("RAFTKV_REWRITE"):
        for example, output in reversed(list(zip(found, outputs, strict=True))):
            start, stop = example.output_lines
            lines[start:stop] = output.splitlines()
        DOC.write_text("\n".join(lines) + "\n")
        return
    for example, output in zip(found, outputs, strict=True):
        assert output == example.expected, f"docs/api.md:{example.line}"
