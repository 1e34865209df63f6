"""The Python examples of docs/coordination.md marked ``<!-- test -->`` run, in a worker thread,
against a three-node in-process cluster served on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).parent.parent / "http"))
from _members import open_members, serve_members

DOC = Path(__file__).resolve().parents[2] / "docs" / "coordination.md"
MARK = "<!-- test -->"


def examples() -> list[tuple[int, str]]:
    lines = DOC.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        if line.strip() == MARK:
            assert lines[i + 1] == "```python", f"coordination.md:{i + 2}: a ```python block"
            end = lines.index("```", i + 2)
            out.append((i + 2, "\n".join(lines[i + 2 : end])))
    return out


async def test_the_examples_run() -> None:
    found = examples()
    assert found
    async with open_members(3) as members, serve_members(members) as urls:
        for line, code in found:

            def run(code: str = code, line: int = line) -> None:
                exec(compile(code, f"{DOC}:{line}", "exec"), {"ENDPOINTS": urls})

            with trio.fail_after(60):
                await trio.to_thread.run_sync(run)
