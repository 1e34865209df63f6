"""``-w simple|json|table``: how a command's answer is written.

- ``simple``: plain lines for shells and pipes (a value as its raw bytes, an id, a revision).
- ``json``: one JSON document; commands that stream (``watch``, ``ls``, ``lease keepalive``,
  ``elect --listen``) write one JSON document a line, as they go.
- ``table``: a bordered table, as etcdctl draws it; streaming commands draw each batch as it
  comes, under one header.

Keys and values in tables are shown as text (bytes that are not UTF-8 escaped); in JSON they are
``key``/``value`` strings, or ``key_b64``/``value_b64`` when they are not UTF-8 (as the HTTP API).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import IO, Final

__all__ = ["FORMATS", "Output", "cell"]

FORMATS: Final = ("simple", "json", "table")

Row = Sequence[object]


def cell(value: object) -> str:
    """A table cell's text."""
    match value:
        case None:
            return ""
        case bool():
            return "true" if value else "false"
        case bytes():
            return value.decode("utf-8", "backslashreplace")
        case _:
            return str(value)


class Output:
    def __init__(self, stream: IO[bytes], format: str = "simple") -> None:
        self.stream = stream
        self.format = format
        self._header_drawn = False

    def write(self, data: bytes) -> None:
        self.stream.write(data)

    def line(self, text: str) -> None:
        self.stream.write(text.encode() + b"\n")

    def flush(self) -> None:
        self.stream.flush()

    def json(self, document: object) -> None:
        self.stream.write(json.dumps(document).encode() + b"\n")

    def show(
        self,
        document: object,
        headers: Sequence[str],
        rows: Sequence[Row],
        simple: Callable[[], None],
    ) -> None:
        """One answer, in the chosen format: ``document`` as JSON, ``rows`` under ``headers`` as
        a table, or ``simple()`` writing its plain form."""
        if self.format == "json":
            self.json(document)
        elif self.format == "table":
            self.table(headers, rows)
        else:
            simple()

    def table(self, headers: Sequence[str], rows: Sequence[Row], *, stream: bool = False) -> None:
        """Draw a table; with ``stream``, the header only the first time (a batch of a stream)."""
        texts = [[cell(v) for v in row] for row in rows]
        widths = [max([len(h), *(len(row[i]) for row in texts)]) for i, h in enumerate(headers)]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        lines = []
        if not (stream and self._header_drawn):
            lines += [rule, _row([h.center(w) for h, w in zip(headers, widths, strict=True)]), rule]
            self._header_drawn = True
        lines += [_row([t.ljust(w) for t, w in zip(row, widths, strict=True)]) for row in texts]
        lines.append(rule)
        self.stream.write("".join(line + "\n" for line in lines).encode())


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
