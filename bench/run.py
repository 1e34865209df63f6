"""Benchmark dispatcher: ``python bench/run.py [suite ...] [--options]`` (suites: ``SUITES``).

Each ``bench/bench_<name>.py`` exposes ``main(argv) -> int``. Figures are printed, never asserted.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

SUITES = ["core", "storage", "node", "http", "watch", "lease", "auth", "gc", "scale", "restart"]


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    names = []
    while argv and not argv[0].startswith("-"):
        names.append(argv.pop(0))
    names = names or SUITES
    extra = argv  # everything after the suite names goes to each suite
    status = 0
    for name in names:
        if name not in SUITES:
            print(f"unknown benchmark {name!r}; choose from {', '.join(SUITES)}", file=sys.stderr)
            return 2
        try:
            module = importlib.import_module(f"bench_{name}")
        except ModuleNotFoundError as exc:
            # Its own module is missing, or one it imports (run outside the project's venv).
            missing = "" if exc.name == f"bench_{name}" else f": it needs {exc.name!r}"
            print(f"benchmark {name!r} is not available{missing}", file=sys.stderr)
            status = 2
            continue
        print(f"== bench {name}")
        status = module.main(extra) or status
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
