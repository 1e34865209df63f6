"""Benchmark probe, loaded into every raftkvd the benchmarks start (``PYTHONPATH=bench/probe``).

Nothing of it is part of the product: it watches a server from inside so that the benchmarks can
report what the server itself sees, and works on older checkouts too (to measure "before").

- Every garbage collection's pause, through ``gc.callbacks``; those of over 2 ms with their CPU
  time and the collector's counts when they began (``slow_collections``).
- With ``RAFTKV_PROBE_CENSUS_IN_WINDOW=s``: that many seconds into the measuring window (below),
  from a thread, the objects the collector tracks (what a full collection walks), counted by
  type (it holds the process for a moment: not for runs whose latency matters).
- The ``Node`` statistics of the runtime (the longest raft-loop iteration, snapshot figures)
  when it has them.
- With ``RAFTKV_PROBE_GARBAGE=1``: during the measuring window, what the collector finds
  unreachable (cyclic garbage: what a hot path should not make) is kept (``gc.DEBUG_SAVEALL``)
  and counted by type at its end, then freed.
- A measuring window: while the file ``$RAFTKV_PROBE_DIR/window`` exists (the benchmark creates
  it when its load starts and removes it when it ends), the pauses and the raft-loop figures
  are also kept apart (polled every 50 ms).

- With ``RAFTKV_PROBE_STEPS=1``: a Trio instrument times every task step (from one checkpoint to
  the next: what holds the raft loop back while it runs) and keeps the longest, by task name.
  With ``RAFTKV_PROBE_STACKS=ms`` too: a thread samples the event loop's stack every
  millisecond while a step has run longer than that (as often as the interpreter lets it: every
  few milliseconds of a step that holds the GIL), and the longest steps are kept with where they
  were (``step_stacks``).

All of it is written as JSON to ``$RAFTKV_PROBE_DIR/probe-<pid>.json`` when the process exits
(raftkvd exits cleanly on SIGTERM).
"""

from __future__ import annotations

import atexit
import collections
import gc
import json
import os
import sys
import threading
import time
from typing import Any

_DIR = os.environ.get("RAFTKV_PROBE_DIR")


class _Probe:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.started = time.perf_counter()
        self.pauses: list[list[float]] = [[], [], []]  # per generation: seconds
        self.window: dict[str, object] = {}
        self.censuses: list[dict[str, object]] = []
        self.nodes: list[object] = []
        self._began = 0.0
        self.steps: dict[str, list[tuple[float, float]]] = {}  # task -> its longest (wall, cpu)
        self.step_stacks: list[tuple[float, str, list[tuple[str, int]]]] = []
        # RAFTKV_PROBE_YOUNG=1: what each middle-generation collection walks (objects in
        # generations 0 and 1, and its pause in CPU), and the types in the largest one; and
        # the same of the youngest generation (``_youngest_census``).
        self.young = os.environ.get("RAFTKV_PROBE_YOUNG") == "1"
        self.young_walks: list[tuple[int, int, float]] = []
        self.young_largest: list[tuple[str, int]] = []
        self._walk = (0, 0)
        self._cpu = 0.0
        # Collections of over 2 ms: (generation, wall and CPU seconds, the collector's counts as
        # it began, the objects it freed, and with RAFTKV_PROBE_YOUNG=1 the youngest
        # generation's length as it began, whatever generation was collected; 0 without): a
        # pause much longer than its CPU time is the machine's (another process had the core).
        self.slow_collections: list[tuple[int, float, float, tuple[int, int, int], int, int]] = []
        self._counts = (0, 0, 0)
        self._young_len = 0
        self._youngest_most = 0
        self.youngest_largest: list[tuple[str, int]] = []

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            if self.young and info["generation"] == 1:
                self._count_young()
            if self.young:
                self._youngest_census()
            self._counts = gc.get_count()
            self._began, self._cpu = time.perf_counter(), time.thread_time()
        else:
            pause = time.perf_counter() - self._began
            self.pauses[info["generation"]].append(pause)
            if pause > 0.002:
                cpu = time.thread_time() - self._cpu
                found = (info["generation"], pause, cpu, self._counts, info["collected"])
                self.slow_collections.append((*found, self._young_len))
            if self.young and info["generation"] == 1:
                self.young_walks.append((*self._walk, time.thread_time() - self._cpu))

    def _count_young(self) -> None:
        young, middle = gc.get_objects(generation=0), gc.get_objects(generation=1)
        self._walk = (len(young), len(middle))
        if not self.young_walks or sum(self._walk) > max(a + b for a, b, _ in self.young_walks):
            counts = collections.Counter(type(o).__qualname__ for o in (*young, *middle))
            self.young_largest = counts.most_common(30)

    def _youngest_census(self) -> None:
        """How long the youngest generation's list is as a collection of it begins (it can be
        far longer than the collector's count: objects of older generations dying take
        their share off that count), and the types in the longest seen."""
        young = gc.get_objects(generation=0)
        self._young_len = len(young)
        if self._young_len > self._youngest_most:
            self._youngest_most = self._young_len
            self.youngest_largest = collections.Counter(
                type(o).__qualname__ for o in young
            ).most_common(30)

    def census(self, at: float) -> None:
        time.sleep(at)
        t0 = time.perf_counter()
        counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
        self.censuses.append(
            {
                "at_s": round(time.perf_counter() - self.started, 1),
                "tracked": sum(counts.values()),
                "frozen": gc.get_freeze_count(),
                "took_s": round(time.perf_counter() - t0, 3),
                "top": counts.most_common(25),
            }
        )

    def node_stats(self) -> list[dict[str, object]]:
        out = []
        for node in self.nodes:
            stats = node.statistics()  # type: ignore[attr-defined]
            fields: dict[str, object] = {}
            for name in getattr(stats, "__slots__", ()):
                value = getattr(stats, name)
                if isinstance(value, int | float):
                    fields[name] = value
                elif hasattr(value, "counts"):
                    fields[name] = list(value.counts)
                    fields[name + "_bounds"] = list(value.bounds)
            out.append(fields)
        return out

    def watch_window(self) -> None:
        flag = os.path.join(self.directory, "window")
        while not os.path.exists(flag):
            time.sleep(0.05)
        for node in self.nodes:  # the longest iteration from now on
            stats = node.statistics()  # type: ignore[attr-defined]
            if hasattr(stats, "loop_stall_max"):
                stats.loop_stall_max = 0.0
        start = [len(g) for g in self.pauses]
        before = self.node_stats()
        census_in = float(os.environ.get("RAFTKV_PROBE_CENSUS_IN_WINDOW", "0") or 0)
        if census_in > 0:
            threading.Thread(target=self.census, args=(census_in,), daemon=True).start()
        garbage = os.environ.get("RAFTKV_PROBE_GARBAGE") == "1"
        if garbage:
            gc.set_debug(gc.DEBUG_SAVEALL)
        while os.path.exists(flag):
            time.sleep(0.05)
        found: list[tuple[str, int]] = []
        if garbage:
            gc.set_debug(0)
            found = collections.Counter(type(o).__name__ for o in gc.garbage).most_common(25)
            gc.garbage.clear()
        self.window = {
            "garbage": found,
            "gc_pauses": [g[s:] for g, s in zip(self.pauses, start, strict=True)],
            "nodes_before": before,
            "nodes_after": self.node_stats(),
        }

    def dump(self) -> None:
        data = {
            "pid": os.getpid(),
            "seconds": time.perf_counter() - self.started,
            "gc_pauses": self.pauses,
            "window": self.window,
            "censuses": self.censuses,
            "young_walks": self.young_walks,
            "young_largest": self.young_largest,
            "slow_collections": self.slow_collections,
            "youngest_largest": self.youngest_largest,
            "nodes": self.node_stats(),
            "longest_steps": sorted(
                ((*max(v), len(v), k) for k, v in self.steps.items()), reverse=True
            )[:30],
            "step_stacks": sorted(self.step_stacks, reverse=True)[:40],
        }
        path = os.path.join(self.directory, f"probe-{os.getpid()}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(data, f)
        os.replace(path + ".tmp", path)

    def record_nodes(self) -> None:
        """Keep every Node the process makes, to read its statistics."""
        try:
            import raftkv  # noqa: PLC0415 - only once the process imports it, if it can
        except ImportError:
            return
        init = raftkv.Node.__init__
        nodes = self.nodes

        def recording_init(node: object, *args: object, **kwargs: object) -> None:
            init(node, *args, **kwargs)  # type: ignore[arg-type]
            nodes.append(node)

        raftkv.Node.__init__ = recording_init  # type: ignore[method-assign]


class _StepTimer:
    """A Trio instrument: the steps of over 2 ms, by task name (the longest 50 of each), each
    as (wall seconds, the thread's CPU seconds): a step much longer than its CPU time waited
    for the machine (another process on the core, the disk), not for work of its own."""

    def __init__(self, steps: dict[str, list[tuple[float, float]]]) -> None:
        self.steps = steps
        self._began = self._cpu = 0.0

    def before_task_step(self, task: object) -> None:
        self._began, self._cpu = time.perf_counter(), time.thread_time()

    def after_task_step(self, task: object) -> None:
        took = time.perf_counter() - self._began
        if took > 0.002:
            kept = self.steps.setdefault(getattr(task, "name", "?"), [])
            _keep_longest(kept, (took, time.thread_time() - self._cpu), 50)


def _keep_longest(kept: list[Any], item: Any, most: int) -> None:
    """Add ``item``; trimmed to the ``most`` largest now and then (not at every step)."""
    kept.append(item)
    if len(kept) > 2 * most:
        kept.sort(reverse=True)
        del kept[most:]


class _StepStacks:
    """A Trio instrument and a thread: where the event loop's thread is, sampled every
    millisecond, during each step that lasts over ``threshold`` seconds."""

    def __init__(self, kept: list[tuple[float, str, list[tuple[str, int]]]], threshold: float):
        self.kept, self.threshold = kept, threshold
        self._step = 0  # odd while a step runs
        self._began = 0.0
        self._task = ""
        self._samples: collections.Counter[str] = collections.Counter()
        self._loop_thread = threading.get_ident()
        threading.Thread(target=self._sample, daemon=True).start()

    def before_task_step(self, task: object) -> None:
        self._task = getattr(task, "name", "?")
        self._samples = collections.Counter()
        self._began = time.perf_counter()
        self._step += 1

    def after_task_step(self, task: object) -> None:
        self._step += 1
        took = time.perf_counter() - self._began
        if took > self.threshold:
            _keep_longest(self.kept, (took, self._task, self._samples.most_common(6)), 100)

    def _sample(self) -> None:
        while True:
            time.sleep(0.001)
            step = self._step
            if step % 2 and time.perf_counter() - self._began > self.threshold:
                frame = sys._current_frames().get(self._loop_thread)
                if frame is not None and step == self._step:
                    self._samples[_where(frame)] += 1


def _where(frame: object) -> str:
    """The innermost frame, and the innermost three of raftkv's own, as text."""
    lines, own = [], 0
    f = frame
    while f is not None and own < 3:
        code = f.f_code  # type: ignore[attr-defined]
        name = code.co_filename
        if not lines or "/raftkv" in name:
            lines.append(f"{'/'.join(name.rsplit('/', 2)[-2:])}:{f.f_lineno} {code.co_name}")  # type: ignore[attr-defined]
            own += "/raftkv" in name
        f = f.f_back  # type: ignore[attr-defined]
    return " < ".join(lines)


def _time_steps(probe: _Probe) -> None:
    import trio  # noqa: PLC0415 - only for this diagnostic

    run = trio.run

    def run_timed(*args: object, **kwargs: object) -> object:
        timers: list[object] = [_StepTimer(probe.steps)]
        if stacks := os.environ.get("RAFTKV_PROBE_STACKS"):
            timers.append(_StepStacks(probe.step_stacks, float(stacks) / 1000))
        kwargs["instruments"] = [*kwargs.get("instruments", ()), *timers]  # type: ignore[misc]
        return run(*args, **kwargs)  # type: ignore[arg-type]

    trio.run = run_timed  # type: ignore[assignment]


def _install(directory: str) -> None:
    probe = _Probe(directory)
    if os.environ.get("RAFTKV_PROBE_STEPS") == "1":
        _time_steps(probe)
    gc.callbacks.append(probe.on_gc)
    threading.Thread(target=probe.watch_window, daemon=True).start()
    probe.record_nodes()
    atexit.register(probe.dump)


if _DIR:
    _install(_DIR)
