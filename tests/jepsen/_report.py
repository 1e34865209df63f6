"""Campaign figures from a results directory: ``python -m jepsen._report <results-dir>``
(run from ``tests/``). Reads every ``run-*/summary.json`` and prints the table docs/testing.md
keeps: runs, operations, faults injected by kind, unknown outcomes, availability of the majority
side during partitions, the slowest return to service after a heal, the watch and lock
workloads' operations by kind and outcome, problems found."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# The watch and lock workloads' kinds, counted apart (the watchers' events are not requests).
_COORDINATION = {"wput", "wdel", "wopen", "event", "werror", "acquire", "lwrite", "lzombie"}


def campaign(results: Path) -> dict[str, object]:
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("run-*/summary.json"))]
    faults: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    not_injected: Counter[str] = Counter()
    mechanisms: set[str] = set()
    ops = unknown = majority_ops = 0
    majority_ok = 0.0
    recoveries, problems, known = [], 0, 0
    for run in runs:
        s = run["stats"]
        ops += s["ops"]
        unknown += s["unknown"]
        faults.update(s["faults"])
        kinds.update(s.get("by_kind", {}))
        not_injected.update(s["not_injected"])
        mechanisms.update(s["mechanisms"])
        if s["majority_availability"] is not None:
            majority_ops += s["majority_ops"]
            majority_ok += s["majority_availability"] * s["majority_ops"]
        if s["recovery_max_s"] is not None:
            recoveries.append(s["recovery_max_s"])
        problems += len(run["problems"])
        known += len(run.get("known", []))
    return {
        "runs": len(runs),
        "operations": ops,
        "faults injected": sum(faults.values()),
        "faults by kind": dict(sorted(faults.items())),
        "mechanisms": sorted(mechanisms),
        "not injected": dict(not_injected),
        "unknown outcomes": f"{unknown} ({unknown / ops:.2%})" if ops else "0",
        "majority availability during partitions": (
            f"{majority_ok / majority_ops:.1%} of {majority_ops} ops" if majority_ops else "n/a"
        ),
        "slowest return to service after a heal (s)": max(recoveries) if recoveries else None,
        "bound (5 election timeouts, s)": runs[0]["stats"]["recovery_bound_s"] if runs else None,
        "coordination operations": {
            k: v for k, v in sorted(kinds.items()) if k.split("-")[0] in _COORDINATION
        },
        "runs with problems": sum(1 for r in runs if r["problems"]),
        "problems": problems,
        "known-bug findings": known,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m jepsen._report <results-dir>", file=sys.stderr)
        return 2
    for key, value in campaign(Path(argv[0])).items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
