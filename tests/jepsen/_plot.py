"""The latency picture of a run, as Jepsen draws it: every operation at its invocation time and
latency (log scale), coloured by outcome, one marker per kind, with each fault window shaded and
labelled. PNG through matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jepsen._history import FAIL, OK, UNKNOWN, History

_COLOURS = {OK: "#2a9d3f", FAIL: "#d62728", UNKNOWN: "#ff9f1c"}
_MARKERS = {
    "write": "o",
    "read": "^",
    "sread": "v",
    "add": "s",
    "probe": "x",
    "list": "D",
    "slist": "D",
    "member": "P",
    "wput": "o",
    "wdel": "o",
    "wopen": "<",
    "acquire": "*",
    "lwrite": "h",
    "lzombie": "h",
    "release": ">",
}
_FAMILY_COLOURS = {
    "partition": "#4c72b0",
    "bridge": "#8172b2",
    "oneway": "#64b5cd",
    "netem": "#ccb974",
    "pause": "#c44e52",
    "kill": "#55a868",
    "churn": "#da8bc3",
    "disk": "#8c8c8c",
}


def latency_plot(history: History, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=80)
    try:
        _windows(ax, history)
        for f, marker in _MARKERS.items():
            for outcome, colour in _COLOURS.items():
                ops = [op for op in history.ops if op.f == f and op.outcome == outcome]
                if not ops:
                    continue
                ax.scatter(
                    [op.invoke for op in ops],
                    [max(op.latency, 1e-4) * 1000 for op in ops],
                    s=7,
                    marker=marker,
                    c=colour,
                    alpha=0.55,
                    linewidths=0.6,
                    label=f"{f} {outcome} ({len(ops)})",
                    rasterized=True,
                )
        ax.set_yscale("log")
        ax.set_xlabel("time since start (s)")
        ax.set_ylabel("latency (ms)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        end = max([op.complete for op in history.ops] or [1.0])
        ax.set_xlim(0, end * 1.01)
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, markerscale=1.6
        )
        fig.tight_layout()
        fig.savefig(path, dpi=80)
    finally:
        plt.close(fig)
    _shrink(path)


def _shrink(path: Path) -> None:
    """A 256-colour palette: a third of the bytes, no visible change (docs keep these)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)


def _windows(ax, history: History) -> None:  # type: ignore[no-untyped-def]
    ymax_axes = [0.97, 0.91, 0.85]
    for i, w in enumerate(history.windows):
        end = w.end if w.end is not None else history.now()
        colour = _FAMILY_COLOURS.get(w.family, "#999999")
        ax.axvspan(w.start, end, color=colour, alpha=0.18, lw=0)
        label = w.name + (f" n{','.join(map(str, w.nodes))}" if len(w.nodes) <= 3 else "")
        ax.text(
            w.start,
            ymax_axes[i % 3],
            label,
            transform=ax.get_xaxis_transform(),
            fontsize=7,
            color=colour,
            va="top",
            ha="left",
            fontweight="bold",
        )
        if w.recovered_after is not None:
            ax.axvline(end + w.recovered_after, color=colour, lw=0.8, ls=":", alpha=0.8)


def main(argv: list[str]) -> int:
    """``python -m jepsen._plot <run-dir>`` (from tests/): draw a run's latency.png again."""
    if len(argv) != 1:
        print("usage: python -m jepsen._plot <run-dir>", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    summary = json.loads((directory / "summary.json").read_text())
    config, stats = summary["config"], summary["stats"]
    title = (
        f"seed {config['seed']}, nemesis {','.join(config['families'])}: {stats['ops']} ops, "
        f"{len(summary['problems'])} problems"
    )
    if summary.get("known"):
        title += f", {len(summary['known'])} known-bug findings"
    latency_plot(History.load(directory), directory / "latency.png", title)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
