"""Storage benchmark: WAL append throughput beside the disk's raw sync rate, and recovery time.

    python bench/run.py storage [--dir=PATH] [--seconds=S] [--recovery-entries=N] [--quick]

Measured in one run, on the same file system (``--dir``, default a temporary directory):

1. the raw sync rate: ``../shared/bench/fsync_rate.py`` run as a subprocess on that directory
   (a small built-in probe when the script is missing);
2. sequential appends of 100-byte entries in batches of 1, 16 and 256 per ``save(sync=True)``
   (entries/s, syncs/s), with ``thread_io`` "auto" (the default), "always" and "never", and
   without preallocation: the figures behind the defaults;
3. how long a save blocks the event loop (the longest gap a concurrent task sees);
4. the time to open and load a data directory holding 1 000 000 entries, with its files
   evicted from the page cache (cold) and cached (warm).

Targets (issue 4): batches of 1 reach 80 % of the raw fdatasync rate, batches of 256 reach
100 000 entries/s, recovery of 1 000 000 entries takes under 5 s. Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
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


# -- the raw sync rate ------------------------------------------------------------------------


def _probe(directory: Path, n: int, sync_name: str) -> float:
    """Syncs/s of (append 100 bytes, sync) on a fresh file: the built-in fallback."""
    sync = getattr(os, sync_name)
    fd, path = tempfile.mkstemp(prefix="probe_", dir=directory)
    try:
        block = os.urandom(ENTRY_BYTES)
        started = time.perf_counter()
        for _ in range(n):
            os.write(fd, block)
            sync(fd)
        return n / (time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(path)


def raw_sync_rates(directory: Path, n: int) -> tuple[dict[str, float], str]:
    """{"fsync": per s, "fdatasync": per s} and where the figures came from."""
    if FSYNC_RATE_SCRIPT.exists():
        cmd = [sys.executable, str(FSYNC_RATE_SCRIPT), f"--n={n}", f"--dir={directory}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
        rates = {
            m.group(1): float(m.group(2))
            for m in re.finditer(r"^(fsync|fdatasync)\s+n=\d+\s+([\d.]+)/s", out.stdout, re.M)
        }
        if len(rates) == 2:
            return rates, str(FSYNC_RATE_SCRIPT)
    rates = {name: _probe(directory, n, name) for name in ("fsync", "fdatasync")}
    return rates, "built-in probe"


# -- appends ----------------------------------------------------------------------------------


def _entries(count: int) -> list[Entry]:
    data = os.urandom(ENTRY_BYTES)
    return [Entry(1, i, data=data) for i in range(1, count + 1)]


async def appends(
    directory: Path, batch: int, seconds: float, thread_io: ThreadIO, preallocate: bool = True
) -> tuple[float, float]:
    """(entries/s, syncs/s) of back-to-back ``save(sync=True)`` calls of ``batch`` entries."""
    shutil.rmtree(directory, ignore_errors=True)
    # Enough entries for the time budget at a generous rate; stop on time.
    pool = _entries(min(4_000_000, max(batch * 200, int(seconds * 400_000))))
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


async def loop_stall(directory: Path, batch: int, thread_io: ThreadIO, seconds: float) -> float:
    """The longest the event loop went without running a ready task during saves (ms)."""
    shutil.rmtree(directory, ignore_errors=True)
    pool = _entries(batch * 2000)
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

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        storage = await FileStorage.open(directory, thread_io=thread_io)
        deadline = time.perf_counter() + seconds
        for start in range(0, len(pool), batch):
            chunk = pool[start : start + batch]
            await storage.save(hard_state=HardState(1, 1, start), entries=chunk, snapshot=None)
            if time.perf_counter() >= deadline:
                break
        await storage.aclose()
        done = True
    return worst * 1e3


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


async def _main(args: argparse.Namespace, root: Path) -> None:
    seconds = 0.5 if args.quick else args.seconds
    n_probe = 500 if args.quick else 2000
    rates, source = raw_sync_rates(root, n_probe)
    raw = rates["fdatasync"]
    print(f"raw sync rate ({source}, 100-byte appends, {root}):")
    print(f"  fsync     {rates['fsync']:9.0f}/s")
    print(f"  fdatasync {raw:9.0f}/s   <- what a WAL record costs (FileStorage uses fdatasync)")

    print(f"\nappends of {ENTRY_BYTES}-byte entries, one save(sync=True) per batch, {seconds} s:")
    print(f"  {'thread_io':10s} {'batch':>5s} {'entries/s':>11s} {'syncs/s':>9s} {'vs raw':>7s}")
    results: dict[tuple[str, int], float] = {}
    for mode in ("auto", "always", "never"):
        for batch in BATCHES:
            eps, sps = await appends(root / "wal", batch, seconds, mode)
            results[mode, batch] = eps
            print(f"  {mode:10s} {batch:5d} {eps:11.0f} {sps:9.0f} {sps / raw:7.0%}")
    for batch in (1, 256):
        eps, sps = await appends(root / "wal", batch, seconds, "auto", preallocate=False)
        print(f"  auto, no preallocation {batch:5d} {eps:11.0f} {sps:9.0f} {sps / raw:7.0%}")

    print("\nlongest event-loop stall during saves (ms):")
    for batch in (1, 256):
        stalls = [await loop_stall(root / "wal", batch, m, seconds / 2) for m in ("auto", "always")]
        print(f"  batch {batch:3d}: auto {stalls[0]:6.2f}   always (thread) {stalls[1]:6.2f}")

    count = 100_000 if args.quick else args.recovery_entries
    print(f"\nrecovery of a data directory holding {count:,} entries of {ENTRY_BYTES} bytes:")
    for batch in (1, 16, 256):
        data = root / f"recovery-{batch}"
        started = time.perf_counter()
        size = await build(data, count, batch)
        built = time.perf_counter() - started
        cold = evict(data)
        t_cold, n = await recover(data)
        t_warm, _ = await recover(data)
        label = "cold" if cold else "first"
        print(
            f"  saved in batches of {batch:3d} ({size / 2**20:.0f} MiB of WAL, built in {built:.0f} s): "
            f"{label} {t_cold:.2f} s, warm {t_warm:.2f} s, {n:,} entries loaded"
        )
        shutil.rmtree(data)

    print("\ntargets:")
    b1, b256 = results["auto", 1], results["auto", 256]
    met = {True: "met", False: "MISSED"}
    print(f"  batch of 1 >= 80% of raw fdatasync: {b1 / raw:.0%} ({met[b1 >= 0.8 * raw]})")
    print(f"  batch of 256 >= 100 000 entries/s:   {b256:,.0f} ({met[b256 >= 100_000]})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench storage")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: /tmp)")
    parser.add_argument("--seconds", type=float, default=2.0, help="per append measurement")
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
