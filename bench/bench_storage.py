"""Storage benchmark: WAL append throughput beside the disk's raw sync rate, and recovery time.

    python bench/run.py storage [--dir=PATH] [--seconds=S] [--rounds=N]
                                [--recovery-entries=N] [--quick]

Measured in one run, on one file system (``--dir``, default a temporary directory in /tmp):

1. the raw sync rate: ``../shared/bench/fsync_rate.py`` run as a subprocess on that directory,
   at the start and at the end, and a built-in probe of the same loop (100-byte append +
   fdatasync on a fresh file) right before every WAL measurement;
2. sequential appends of 100-byte entries in batches of 1, 16 and 256 per ``save(sync=True)``
   (entries/s, syncs/s) with ``thread_io`` "auto" (the default), "always" and "never", and with
   preallocation off: the figures behind the defaults. These disks are noisy, so each run is
   paired with a probe run just before it and configurations are interleaved over ``--rounds``
   rounds; medians are reported;
3. how long saves block the event loop: the longest gap a concurrent task sees per save;
4. the time to open and load a data directory holding 1 000 000 entries (saved in batches of
   1, 16 and 256), with its files evicted from the page cache (cold) and cached (warm).

Targets (issue 4): batches of 1 reach 80 % of the raw fdatasync rate, batches of 256 reach
100 000 entries/s, recovery of 1 000 000 entries takes under 5 s. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from raftkv.core import Entry, HardState
from raftkv.storage import FileStorage, OsFileSystem, ThreadIO

FSYNC_RATE_SCRIPT = Path(__file__).resolve().parents[2] / "shared" / "bench" / "fsync_rate.py"
ENTRY_BYTES = 100
BATCHES = (1, 16, 256)
CONFIGS: tuple[tuple[ThreadIO, bool], ...] = (
    ("auto", True),
    ("always", True),
    ("never", True),
    ("auto", False),
)


# -- the raw sync rate ------------------------------------------------------------------------


def probe(directory: Path, seconds: float, sync_name: str = "fdatasync") -> float:
    """Syncs/s of (append 100 bytes, sync) on a fresh file, for ``seconds``."""
    sync = getattr(os, sync_name)
    fd, path = tempfile.mkstemp(prefix="probe_", dir=directory)
    try:
        block = os.urandom(ENTRY_BYTES)
        n = 0
        started = time.perf_counter()
        deadline = started + seconds
        while True:
            os.write(fd, block)
            sync(fd)
            n += 1
            if n % 64 == 0 and time.perf_counter() >= deadline:
                break
        return n / (time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(path)


def shared_probe(directory: Path, n: int) -> dict[str, float] | None:
    """{"fsync": per s, "fdatasync": per s} from ../shared/bench/fsync_rate.py, if present."""
    if not FSYNC_RATE_SCRIPT.exists():
        return None
    cmd = [sys.executable, str(FSYNC_RATE_SCRIPT), f"--n={n}", f"--dir={directory}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    rates = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^(fsync|fdatasync)\s+n=\d+\s+([\d.]+)/s", out.stdout, re.M)
    }
    return rates if len(rates) == 2 else None


# -- appends ----------------------------------------------------------------------------------


def _entries(count: int) -> list[Entry]:
    data = os.urandom(ENTRY_BYTES)
    return [Entry(1, i, data=data) for i in range(1, count + 1)]


async def appends(
    directory: Path, batch: int, seconds: float, thread_io: ThreadIO, preallocate: bool
) -> tuple[float, float]:
    """(entries/s, syncs/s) of back-to-back ``save(sync=True)`` calls of ``batch`` entries."""
    shutil.rmtree(directory, ignore_errors=True)
    pool = _entries(min(3_000_000, max(batch * 200, int(seconds * 1_000_000))))
    storage = await FileStorage.open(directory, thread_io=thread_io, preallocate=preallocate)
    try:
        written = 0
        started = time.perf_counter()
        deadline = started + seconds
        while written + batch <= len(pool):
            chunk = pool[written : written + batch]
            written += batch
            await storage.save(
                hard_state=HardState(1, 1, written - batch), entries=chunk, snapshot=None
            )
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - started
        syncs = storage.statistics().syncs
    finally:
        await storage.aclose()
    return written / elapsed, syncs / elapsed


async def loop_stalls(
    directory: Path, batch: int, thread_io: ThreadIO, seconds: float
) -> list[float]:
    """Per save, the longest the event loop went without running a ready task (seconds)."""
    shutil.rmtree(directory, ignore_errors=True)
    pool = _entries(batch * 4000)
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        last = time.perf_counter()
        while not done:
            await trio.sleep(0)
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now

    stalls = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        storage = await FileStorage.open(directory, thread_io=thread_io)
        deadline = time.perf_counter() + seconds
        for start in range(0, len(pool), batch):
            worst = 0.0
            chunk = pool[start : start + batch]
            await storage.save(hard_state=HardState(1, 1, start), entries=chunk, snapshot=None)
            await trio.sleep(0)  # let the ticker see the end of the gap
            stalls.append(worst)
            if time.perf_counter() >= deadline:
                break
        await storage.aclose()
        done = True
    return stalls


# -- recovery ---------------------------------------------------------------------------------


class _NoSyncFileSystem(OsFileSystem):
    """Builds the recovery fixture quickly: the figures of interest are reading it back."""

    def fdatasync(self, fd: int) -> None:
        return None


async def build(directory: Path, count: int, batch: int) -> int:
    """A data directory of ``count`` entries saved ``batch`` at a time; WAL bytes written."""
    shutil.rmtree(directory, ignore_errors=True)
    data = os.urandom(ENTRY_BYTES)
    storage = await FileStorage.open(directory, fs=_NoSyncFileSystem(), thread_io="never")
    for first in range(1, count + 1, batch):
        chunk = [Entry(1, i, data=data) for i in range(first, min(first + batch, count + 1))]
        await storage.save(hard_state=HardState(1, 1, first - 1), entries=chunk, snapshot=None)
    written = storage.statistics().bytes_written
    await storage.aclose()
    return written


def evict(directory: Path) -> bool:
    """Drop the directory's files from the page cache (after syncing them); False if unsupported."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in directory.iterdir():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


async def recover(directory: Path) -> tuple[float, int]:
    started = time.perf_counter()
    storage = await FileStorage.open(directory)
    state = await storage.load()
    elapsed = time.perf_counter() - started
    await storage.aclose()
    return elapsed, len(state.entries)


# -- report -----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:6.2f}"


async def _main(args: argparse.Namespace, root: Path) -> None:
    seconds = 0.3 if args.quick else args.seconds
    rounds = 1 if args.quick else args.rounds
    shared = shared_probe(root, 500 if args.quick else 2000)
    if shared:
        print(f"raw sync rate, {FSYNC_RATE_SCRIPT} on {root}:")
        print(f"  fsync {shared['fsync']:.0f}/s, fdatasync {shared['fdatasync']:.0f}/s")
    else:
        print(f"{FSYNC_RATE_SCRIPT} not found: the built-in probe alone gives the raw rate")

    # The disk's speed drifts within seconds here, so every WAL run is paired with a raw probe
    # run just before it, the configurations of one batch size run back to back, and ratios
    # of neighbours are what is compared.
    runs: dict[tuple[ThreadIO, bool, int], list[tuple[float, float, float, float]]] = {}
    for _ in range(rounds):
        for batch in BATCHES:
            base = 0.0
            for thread_io, prealloc in CONFIGS:
                raw = probe(root, seconds / 2)
                eps, sps = await appends(root / "wal", batch, seconds, thread_io, prealloc)
                base = base or eps  # the default configuration runs first
                runs.setdefault((thread_io, prealloc, batch), []).append(
                    (eps, sps, sps / raw, eps / base)
                )
    print(
        f"\nappends of {ENTRY_BYTES}-byte entries, one save(sync=True) per batch, {seconds} s "
        f"each, {rounds} interleaved rounds, medians. 'vs probe': syncs/s over the rate of "
        f"fsync_rate.py's loop (append 100 bytes + fdatasync) probed just before; 'vs auto': "
        f"entries/s over the default configuration's, run just before:"
    )
    print(
        f"  {'thread_io':9s} {'prealloc':8s} {'batch':>5s} {'entries/s':>10s} {'syncs/s':>8s} "
        f"{'vs probe':>8s} {'vs auto':>8s}"
    )
    for thread_io, prealloc in CONFIGS:
        for batch in BATCHES:
            results = runs[thread_io, prealloc, batch]
            eps, sps, ratio, rel = (statistics.median(r[i] for r in results) for i in range(4))
            print(
                f"  {thread_io:9s} {prealloc!s:8s} {batch:5d} {eps:10.0f} {sps:8.0f} "
                f"{ratio:8.0%} {rel:8.0%}"
            )

    print("\nevent-loop stall per save (ms; the longest gap another task saw): p50 / p99 / max")
    for batch in (1, 256):
        for thread_io in ("auto", "always"):
            stalls = sorted(await loop_stalls(root / "wal", batch, thread_io, seconds))
            p50, p99 = stalls[len(stalls) // 2], stalls[int(len(stalls) * 0.99)]
            print(f"  batch {batch:3d} {thread_io:6s} {_ms(p50)} / {_ms(p99)} / {_ms(stalls[-1])}")

    count = 100_000 if args.quick else args.recovery_entries
    print(f"\nrecovery (open + load) of a data directory holding {count:,} entries of 100 bytes:")
    for batch in BATCHES:
        data = root / f"recovery-{batch}"
        size = await build(data, count, batch)
        cold = evict(data)
        t_cold, n = await recover(data)
        t_warm, _ = await recover(data)
        print(
            f"  saved in batches of {batch:3d} ({size / 2**20:.0f} MiB of records): "
            f"{'cold' if cold else 'first'} {t_cold:.2f} s, warm {t_warm:.2f} s ({n:,} loaded)"
        )
        shutil.rmtree(data)

    b1 = statistics.median(r[2] for r in runs["auto", True, 1])
    b256 = statistics.median(r[0] for r in runs["auto", True, 256])
    met = {True: "met", False: "MISSED"}
    print("\ntargets (defaults: thread_io='auto', preallocation on):")
    print(f"  batch of 1 at {b1:.0%} of the raw fdatasync rate ({met[b1 >= 0.8]} 80%)")
    print(f"  batch of 256 at {b256:,.0f} entries/s ({met[b256 >= 100_000]} 100 000)")
    if shared:
        again = shared_probe(root, 2000)
        if again:
            print(f"  fsync_rate.py at the end: fdatasync {again['fdatasync']:.0f}/s")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench storage")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: /tmp)")
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--recovery-entries", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="small figures, for a smoke run")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="raftkv-bench-storage-", dir=args.dir))
    try:
        trio.run(_main, args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
