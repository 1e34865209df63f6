"""Data-driven test files, as in etcd-io/raft's ``testdata/*.txt`` (cockroachdb/datadriven).

A file is a sequence of cases::

    # comments and blank lines before a case are kept on rewrite
    cmd arg1 key=value key2=(a,b)
    ----
    expected output, up to the first blank line

When the expected output itself contains blank lines, it is framed by a doubled separator::

    cmd
    ----
    ----
    first paragraph

    second paragraph
    ----
    ----

Empty output is written as ``ok``. In rewrite mode (``pytest --rewrite`` or ``RAFTKV_REWRITE=1``)
the file is written back with the actual output in place of the expected one; review the diff.
"""

from __future__ import annotations

import difflib
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Arg",
    "DataDrivenError",
    "TestCase",
    "parse_file",
    "parse_text",
    "rewrite_requested",
    "run_file",
]

SEPARATOR = "----"


class DataDrivenError(AssertionError):
    """A data-driven file is malformed, or its expected output does not match."""


@dataclass(frozen=True, slots=True)
class Arg:
    """``key`` alone (a positional word), or ``key=value``; ``(a,b)`` values become several."""

    key: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.values:
            return self.key
        if len(self.values) == 1:
            return f"{self.key}={self.values[0]}"
        return f"{self.key}=({','.join(self.values)})"


@dataclass(slots=True)
class TestCase:
    """One case: where it is, its command, and what it expects."""

    __test__ = False  # not a pytest class

    path: str
    line: int
    cmd: str
    args: list[Arg]
    cmd_line: str
    expected: str
    # Lines (comments, blank lines) that precede the case, kept verbatim on rewrite.
    preamble: list[str] = field(default_factory=list)

    @property
    def pos(self) -> str:
        return f"{self.path}:{self.line}"

    def arg(self, key: str) -> Arg | None:
        for a in self.args:
            if a.key == key and a.values:
                return a
        return None

    def positional(self) -> list[str]:
        return [a.key for a in self.args if not a.values]


def _parse_arg(word: str) -> Arg:
    key, eq, value = word.partition("=")
    if not eq:
        return Arg(key)
    if value.startswith("(") and value.endswith(")"):
        inner = value[1:-1]
        return Arg(key, tuple(v.strip() for v in inner.split(",") if v.strip()))
    return Arg(key, (value,))


def parse_command(line: str) -> tuple[str, list[Arg]]:
    words = shlex.split(line, comments=False)
    if not words:
        raise DataDrivenError(f"empty command line {line!r}")
    return words[0], [_parse_arg(w) for w in words[1:]]


def parse_text(text: str, path: str = "<string>") -> tuple[list[TestCase], list[str]]:
    """The cases of a file, and the trailing lines after the last case."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    cases: list[TestCase] = []
    preamble: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            preamble.append(line)
            i += 1
            continue
        cmd_lineno = i + 1
        cmd_line = line.rstrip()
        i += 1
        if i >= len(lines) or lines[i].rstrip() != SEPARATOR:
            raise DataDrivenError(f"{path}:{cmd_lineno}: expected {SEPARATOR!r} after the command")
        i += 1
        out: list[str] = []
        if i < len(lines) and lines[i].rstrip() == SEPARATOR:
            # Doubled separator: output runs to the closing "----\n----".
            i += 1
            while True:
                if i >= len(lines):
                    raise DataDrivenError(f"{path}:{cmd_lineno}: unterminated {SEPARATOR} block")
                if (
                    lines[i].rstrip() == SEPARATOR
                    and i + 1 < len(lines)
                    and lines[i + 1].rstrip() == SEPARATOR
                ):
                    i += 2
                    break
                out.append(lines[i])
                i += 1
        else:
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
        if i < len(lines) and not lines[i].strip():
            i += 1  # the blank line that ends the case belongs to it
        cmd, args = parse_command(cmd_line)
        expected = "\n".join(out)
        cases.append(TestCase(path, cmd_lineno, cmd, args, cmd_line, expected, preamble))
        preamble = []
    return cases, preamble


def parse_file(path: Path) -> tuple[list[TestCase], list[str]]:
    return parse_text(path.read_text(), str(path))


def format_case(cmd_line: str, output: str) -> str:
    """One case as it is written to a file (no preamble, no trailing blank line)."""
    output = output.rstrip("\n") or "ok"
    body = [line.rstrip() for line in output.split("\n")]
    if any(not line.strip() for line in body):
        return "\n".join([cmd_line, SEPARATOR, SEPARATOR, *body, SEPARATOR, SEPARATOR])
    return "\n".join([cmd_line, SEPARATOR, *body])


def _normalize(output: str) -> str:
    output = output.rstrip("\n") or "ok"
    return "\n".join(line.rstrip() for line in output.split("\n"))


def rewrite_requested() -> bool:
    return os.environ.get("RAFTKV_REWRITE", "") not in ("", "0")


def run_file(
    path: Path,
    handler: Callable[[TestCase], str],
    *,
    rewrite: bool | None = None,
) -> None:
    """Run every case of ``path`` through ``handler``; compare, or rewrite the file.

    All mismatches of the file are reported together (as a unified diff per case). Once a case
    mismatches, later cases still run: their output is usually the best clue.
    """
    if rewrite is None:
        rewrite = rewrite_requested()
    cases, trailer = parse_file(path)
    pieces: list[str] = []
    failures: list[str] = []
    for case in cases:
        actual = handler(case)
        pieces.extend(case.preamble)
        pieces.append(format_case(case.cmd_line, actual))
        pieces.append("")
        want, got = _normalize(case.expected), _normalize(actual)
        if want != got:
            diff = "\n".join(
                difflib.unified_diff(
                    want.split("\n"), got.split("\n"), "expected", "actual", lineterm=""
                )
            )
            failures.append(f"{case.pos}: {case.cmd_line}\n{diff}")
    if rewrite:
        text = "\n".join(pieces + trailer).rstrip("\n") + "\n"
        path.write_text(text)
        return
    if failures:
        raise DataDrivenError(
            f"{len(failures)} case(s) of {path} do not match (rerun with --rewrite to accept):\n\n"
            + "\n\n".join(failures)
        )
