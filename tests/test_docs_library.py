"""Every example in docs/library.md runs as written and prints what its comments say.

The first block (the ``Counter`` state machine) is the preamble of every example; a block that
starts with ``# example: <name>`` is a program. The TCP example runs as three processes.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).parent.parent / "docs" / "library.md"


def _blocks() -> tuple[str, dict[str, str]]:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    preamble = blocks[0]
    examples = {}
    for block in blocks[1:]:
        m = re.match(r"# example: (\w+)", block)
        assert m, f"every later block names its example: {block[:60]!r}"
        examples[m.group(1)] = block
    return preamble, examples


PREAMBLE, EXAMPLES = _blocks()


def _run(tmp_path: Path, name: str, *args: str, timeout: float = 60) -> str:
    script = tmp_path / f"{name}.py"
    example = EXAMPLES[name]
    # The preamble goes after the example's imports (`from __future__` style needs none).
    script.write_text(PREAMBLE + "\n" + example)
    r = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_the_readme_library_example_runs_as_written(tmp_path: Path) -> None:
    readme = (DOC.parent.parent / "README.md").read_text()
    section = readme[readme.index("## The library") :]
    (block,) = re.findall(r"```python\n(.*?)```", section.split("\n## ")[0], re.S)
    script = tmp_path / "readme.py"
    script.write_text(block)
    r = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["1", "1"]


def test_every_example_is_tested() -> None:
    assert set(EXAMPLES) == {"local", "tcp", "errors", "kv", "partition"}


def test_local(tmp_path: Path) -> None:
    assert _run(tmp_path, "local").split() == ["5", "5"]


def test_errors(tmp_path: Path) -> None:
    assert _run(tmp_path, "errors").splitlines()[-1] == "True"


def test_kv(tmp_path: Path) -> None:
    assert _run(tmp_path, "kv").splitlines() == ["1 b'hello'", "b'hello'"]


def test_partition(tmp_path: Path) -> None:
    out = _run(tmp_path, "partition").splitlines()
    assert out[0].startswith("node 1 cannot commit alone:") and out[1] == "2"


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listener does
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_tcp_across_three_processes(tmp_path: Path) -> None:
    if not all(_free(p) for p in (17001, 17002, 17003)):
        pytest.skip("the example's ports 17001-17003 are in use on this machine")
    script = tmp_path / "counter.py"
    script.write_text(PREAMBLE + "\n" + EXAMPLES["tcp"])
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(i)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2, 3)
    ]
    try:
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    for i, (p, (out, _)) in enumerate(zip(procs, outs, strict=True), 1):
        assert p.returncode == 0, (i, [err[-1500:] for _, err in outs])
        assert f"node {i}: added one" in out and out.strip().endswith("the counter is 3")
    for i in (1, 2, 3):
        assert (tmp_path / f"counter-{i}").is_dir()
