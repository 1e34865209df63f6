"""The data-driven file format: parsing, comparing, rewriting, blank lines in output."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkv.testing import DataDrivenError, TestCase, parse_text, run_file

TEXT = """\
# a comment before the first case

echo a b=1 c=(x,y)
----
a b=1 c=(x,y)

# comment
blank
----
----
one

two
----
----

empty
----
ok
"""


def echo(case: TestCase) -> str:
    if case.cmd == "echo":
        return " ".join(str(a) for a in case.args)
    if case.cmd == "blank":
        return "one\n\ntwo"
    return ""


def test_parse() -> None:
    cases, trailer = parse_text(TEXT)
    assert [c.cmd for c in cases] == ["echo", "blank", "empty"]
    first = cases[0]
    assert first.preamble == ["# a comment before the first case", ""]
    assert first.positional() == ["a"]
    b = first.arg("b")
    c = first.arg("c")
    assert b is not None and b.values == ("1",)
    assert c is not None and c.values == ("x", "y")
    assert cases[1].expected == "one\n\ntwo"
    assert cases[2].expected == "ok"
    assert trailer == []


def test_matching_file_passes_and_rewrite_is_identity(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    run_file(path, echo, rewrite=False)
    run_file(path, echo, rewrite=True)
    assert path.read_text() == TEXT


def test_mismatch_reports_a_diff(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(TEXT.replace("a b=1 c=(x,y)\n\n", "wrong\n\n"))
    with pytest.raises(DataDrivenError, match=r"(?s)t\.txt:3: echo.*-wrong.*\+a b=1"):
        run_file(path, echo, rewrite=False)


def test_rewrite_fills_in_output(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("echo hi\n----\n\nblank\n----\n")
    run_file(path, echo, rewrite=True)
    assert path.read_text() == "echo hi\n----\nhi\n\nblank\n----\n----\none\n\ntwo\n----\n----\n"
    run_file(path, echo, rewrite=False)


def test_malformed_files_are_refused() -> None:
    with pytest.raises(DataDrivenError, match="expected '----'"):
        parse_text("echo\nnot a separator\n")
    with pytest.raises(DataDrivenError, match="unterminated"):
        parse_text("echo\n----\n----\nline\n")
