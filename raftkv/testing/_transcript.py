"""``Transcript``: a simulator run in the scenario format (``cmd args`` / ``----`` / output).

Every public ``Cluster`` operation is one command. Operations call each other (``elect`` runs
``transfer`` and ``stabilize``), so only the outermost one is recorded: ``command`` nests, and
whatever an inner operation prints belongs to the outer command's output. The command lines
alone (``script``) are kept even when output recording is off, so that any run can be replayed
(``raftkv.testing.replay``) and saved as a scenario file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ._datadriven import format_case

__all__ = ["Transcript"]


class Transcript:
    """The commands of a run and what each printed.

    ``out`` is the output list of the command being recorded, or None when nothing is recorded
    (``record=False``, or inside ``quiet``): hot paths test it once and append to it directly.
    ``on_command_end`` runs after every outermost command (the simulator checks its invariants).
    """

    def __init__(self, *, record: bool, script: bool, on_command_end: Callable[[], None]) -> None:
        self._record = record
        self._keep_script = script
        self._on_command_end = on_command_end
        self._depth = 0
        self._line = ""
        self.out: list[str] | None = None
        self.script: list[str] = []
        self.cases: list[tuple[str, str]] = []
        self.last_output = ""

    @contextmanager
    def command(self, line: str) -> Iterator[None]:
        """Record ``line`` and what it prints, unless an enclosing command is being recorded."""
        top = self._depth == 0
        self._depth += 1
        if top:
            self._line = line
            if self._keep_script:
                self.script.append(line)
            if self._record:
                self.out = []
        try:
            yield
        finally:
            self._depth -= 1
            if top:
                self._on_command_end()
                if self.out is not None:
                    self.last_output = "\n".join(self.out)
                    self.cases.append((self._line, self.last_output))
                    self.out = None

    @contextmanager
    def quiet(self, quiet: bool = True) -> Iterator[None]:
        """Print nothing inside (when ``quiet``): for compound operations that only report a
        summary."""
        out = self.out
        if quiet:
            self.out = None
        try:
            yield
        finally:
            self.out = out

    def emit(self, line: str) -> None:
        if self.out is not None:
            self.out.append(line)

    def text(self) -> str:
        """Everything recorded so far, in the scenario format."""
        return "".join(format_case(cmd, out) + "\n\n" for cmd, out in self.cases)

    def script_text(self) -> str:
        """The commands so far, as a scenario file whose outputs are still to be filled in."""
        return "".join(f"{cmd}\n----\nok\n\n" for cmd in self.script)
