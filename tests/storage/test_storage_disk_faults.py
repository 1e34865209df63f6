"""A full, read-only or vanished disk: a clear ``StorageFailed``, nothing acknowledged after it.

At the storage level, on the simulated file system with injected errors (every write and sync
of a workload in turn), on the real one, and, where the test may mount file systems (root),
on a real 8 MiB tmpfs and a read-only bind mount.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from storage_workload import apply, assert_refuses, is_durable, run_model, workload

from raftkv import StorageFailed
from raftkv.core import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
from raftkv.storage import (
    FaultyFileSystem,
    FileStorage,
    OsFileSystem,
    PersistedState,
    SimFileSystem,
)

DIR = "/data"
SEGMENT_BYTES = 4096

ERRORS = {
    errno.ENOSPC: ("No space left on device", "the disk is full"),
    errno.EROFS: ("Read-only file system", "the file system is read-only"),
}


def E(index: int, size: int = 100) -> Entry:
    return Entry(1, index, data=b"d" * size)


def snap(index: int, size: int = 500) -> Snapshot:
    return Snapshot(SnapshotMetadata(index, 1, ConfState((1,))), b"s" * size)


def _assert_clear(exc: BaseException, code: int) -> None:
    strerror, hint = ERRORS[code]
    text = str(exc)
    assert strerror in text and errno.errorcode[code] in text and hint in text, text
    assert re.search(rf"(^|\s)/(data|tmp)[^ ]*: {strerror}", text), f"no file named: {text}"


async def _count_calls(seed: int, n: int) -> dict[str, int]:
    fs = FaultyFileSystem(SimFileSystem(dirs=[DIR]))
    storage = await FileStorage.open(DIR, segment_bytes=SEGMENT_BYTES, thread_io="never", fs=fs)
    for op in workload(seed, n):
        await apply(storage, op)
    await storage.aclose()
    return dict(fs.calls)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
@pytest.mark.parametrize(
    "op", ["pwrite", "fdatasync", "ftruncate", "create", "rename", "fsync_dir"]
)
async def test_a_full_or_read_only_disk_at_any_write_or_sync_fails_clearly_losing_nothing(
    op: str, code: int
) -> None:
    """The error surfaces as ``StorageFailed`` naming the file, what happened and what to do;
    the call that hit it and every later one is refused, and a restart finds every save that
    returned and nothing the failed one did not promise."""
    seed, n = 31, 120
    ops = list(workload(seed, n))
    states = [PersistedState(), *run_model(ops)]
    total = (await _count_calls(seed, n)).get(op, 0)
    assert total > 0, f"the workload never calls {op}"
    rng = random.Random(code)
    for after in sorted({0, 1, total - 1, *rng.sample(range(total), min(total, 12))}):
        sim = SimFileSystem(dirs=[DIR])
        fs = FaultyFileSystem(sim)
        fs.fail(op, after=after, error=OSError(code, os.strerror(code)))
        try:
            storage = await FileStorage.open(
                DIR, segment_bytes=SEGMENT_BYTES, thread_io="never", fs=fs
            )
        except StorageFailed as exc:
            assert str(exc).startswith(f"cannot open {DIR}")
            _assert_clear(exc, code)
            continue
        durable, failed = -1, None
        for j, step in enumerate(ops):
            try:
                await apply(storage, step)
            except StorageFailed as exc:
                _assert_clear(exc, code)
                failed = j
                break
            if is_durable(step):
                durable = j
        assert failed is not None, f"{op} #{after}: the fault was never hit"
        with pytest.raises(StorageFailed) as refused:
            await storage.compact(1)
        # One line a log's tail shows whole: the directory once, its files by their names.
        assert str(refused.value).count(DIR) == 1, refused.value
        await assert_refuses(storage)
        for mode in ("lost", "kept"):
            image = sim.crash(random.Random(after), mode)
            async with await FileStorage.open(
                DIR, segment_bytes=SEGMENT_BYTES, thread_io="never", fs=image
            ) as again:
                state = await again.load()
            assert state in states[durable + 1 : failed + 2], (
                f"{op} failing after {after} calls ({mode}): lost a save that returned, or "
                f"found one never made"
            )


async def test_no_room_to_preallocate_starts_without_preallocating(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Preallocation only makes syncs cheaper: a disk without room for it is no reason to
    refuse to start. The segment is used as it is, and said so."""
    caplog.set_level(logging.WARNING, logger="raftkv.storage")
    fs = FaultyFileSystem(OsFileSystem())
    fs.fail("preallocate", error=OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    async with await FileStorage.open(tmp_path, fs=fs, segment_bytes=8192) as storage:
        for i in range(1, 301):
            await storage.save(hard_state=HardState(1, 1, i), entries=[E(i)], snapshot=None)
        assert storage.statistics().segments > 2
    assert "not enough free space to preallocate 8192 bytes" in caplog.text
    segments = sorted(tmp_path.glob("*.wal"))
    assert segments[-1].stat().st_size < 8192  # not preallocated
    async with await FileStorage.open(tmp_path, segment_bytes=8192) as again:
        assert [e.index for e in (await again.load()).entries] == list(range(1, 301))


async def test_other_preallocation_errors_still_fail(tmp_path: Path) -> None:
    fs = FaultyFileSystem(OsFileSystem())
    fs.fail("preallocate")  # EIO
    with pytest.raises(StorageFailed, match=r"Input/output error .*EIO, in preallocating"):
        await FileStorage.open(tmp_path, fs=fs)


# -- the data directory removed, or read-only --------------------------------------------------


async def test_the_data_directory_removed_under_a_running_storage_fails_the_next_save(
    tmp_path: Path,
) -> None:
    """Writing to a deleted file succeeds (and is lost on restart): the storage notices that its
    segment has no name any more and refuses, rather than acknowledge into the void."""
    directory = tmp_path / "raft"
    storage = await FileStorage.open(directory)
    await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1)], snapshot=None)
    shutil.rmtree(directory)
    with pytest.raises(StorageFailed) as info:
        await storage.save(hard_state=HardState(1, 1, 1), entries=[E(2)], snapshot=None)
    text = str(info.value)
    assert "0000000000000000-0000000000000001.wal: the open WAL segment was deleted" in text
    assert "ENOENT" in text and "removed while the node was running" in text
    await assert_refuses(storage)


async def test_the_data_directory_removed_fails_a_snapshot_too(tmp_path: Path) -> None:
    directory = tmp_path / "raft"
    storage = await FileStorage.open(directory)
    await storage.save(hard_state=HardState(1, 1, 1), entries=[E(1)], snapshot=None)
    shutil.rmtree(directory)
    with pytest.raises(StorageFailed, match=r"snap-.*\.snap\.tmp: No such file or directory"):
        await storage.save_snapshot(snap(1))
    await assert_refuses(storage)


async def test_segments_deleted_on_the_simulated_disk_fail_the_next_save() -> None:
    sim = SimFileSystem(dirs=[DIR])
    storage = await FileStorage.open(DIR, thread_io="never", fs=sim)
    await storage.save(hard_state=HardState(1, 1, 0), entries=[E(1)], snapshot=None)
    for path in list(sim.image()):
        sim.unlink(path)
    with pytest.raises(StorageFailed, match="the open WAL segment was deleted"):
        await storage.save(hard_state=None, entries=[E(2)], snapshot=None)
    await assert_refuses(storage)


_MUTATING = ("create", "pwrite", "fdatasync", "ftruncate", "preallocate", "rename", "unlink")


@pytest.mark.parametrize("existing", [False, True])
async def test_a_read_only_data_directory_is_refused_on_start(
    tmp_path: Path, existing: bool
) -> None:
    """Simulated: every call that would change the disk fails with EROFS, as on a read-only
    mount (where even opening ``LOCK`` for writing does)."""
    if existing:
        async with await FileStorage.open(tmp_path) as storage:
            await storage.save(hard_state=HardState(1, 1, 1), entries=[E(1)], snapshot=None)
    fs = FaultyFileSystem(OsFileSystem())
    for op in (*_MUTATING, "lock", "makedirs", "fsync_dir"):
        fs.fail(op, error=OSError(errno.EROFS, os.strerror(errno.EROFS)))
    with pytest.raises(StorageFailed) as info:
        await FileStorage.open(tmp_path / "raft" if not existing else tmp_path, fs=fs)
    text = str(info.value)
    assert text.startswith("cannot open ") and "Read-only file system (EROFS" in text, text
    assert "remount it read-write" in text


# -- real file systems (root only) -------------------------------------------------------------


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)


@contextmanager
def _mounted(target: Path, *argv: str) -> Iterator[Path]:
    """``mount <argv> <target>`` for the block; skips the test where mounting is not allowed."""
    target.mkdir(parents=True, exist_ok=True)
    r = _run("mount", *argv, str(target))
    if r.returncode != 0:
        pytest.skip(f"cannot mount here (needs root and CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield target
    finally:
        _run("umount", "-l", str(target))


async def _fill(storage: FileStorage, first: int, size: int) -> tuple[int, StorageFailed]:
    """Saves one entry of ``size`` bytes at a time until the disk is full: (last saved, error)."""
    i = first
    while True:
        try:
            await storage.save(hard_state=HardState(1, 1, i), entries=[E(i, size)], snapshot=None)
        except StorageFailed as exc:
            return i - 1, exc
        i += 1
        assert i < first + 100_000, "the disk never filled"


async def test_an_8_mib_tmpfs_starts_with_default_segments_and_fails_clearly_when_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="raftkv.storage")
    with _mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=8m", "tmpfs") as disk:
        directory = disk / "raft"
        storage = await FileStorage.open(directory)  # 64 MiB segments on an 8 MiB disk
        assert "not enough free space to preallocate" in caplog.text
        last, exc = await _fill(storage, 1, 64 << 10)
        text = str(exc)
        assert "No space left on device (ENOSPC" in text and "the disk is full" in text, text
        assert str(directory / "0000000000000000-0000000000000001.wal") in text
        await assert_refuses(storage)
        assert last > 50
        # Give the disk room again: every save that returned is there.
        assert _run("mount", "-o", "remount,size=16m", str(disk)).returncode == 0
        async with await FileStorage.open(directory) as again:
            state = await again.load()
        assert [e.index for e in state.entries][:last] == list(range(1, last + 1))


async def test_an_8_mib_tmpfs_runs_for_ever_with_small_segments_and_compaction(
    tmp_path: Path,
) -> None:
    """With 512 KiB segments, snapshots and compaction keep the disk bounded: 4x the disk's
    size is written through it without running out of space."""
    with _mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=8m", "tmpfs") as disk:
        async with await FileStorage.open(disk / "raft", segment_bytes=512 << 10) as storage:
            for i in range(1, 8193):  # 4 KiB each: 32 MiB
                await storage.save(
                    hard_state=HardState(1, 1, i), entries=[E(i, 4096)], snapshot=None
                )
                if i % 256 == 0:
                    await storage.save_snapshot(snap(i, size=64 << 10))
                    await storage.compact(i - 64)
            state = await storage.load()
        assert state.snapshot == snap(8192, size=64 << 10)
        usage = shutil.disk_usage(disk)
        assert usage.used < 4 << 20, usage


async def test_a_full_disk_at_start_is_a_clear_error(tmp_path: Path) -> None:
    with _mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=1m", "tmpfs") as disk:
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError, match="No space left"):
                for _ in range(1024):
                    os.write(fd, b"x" * 4096)
        finally:
            os.close(fd)
        with pytest.raises(StorageFailed) as info:
            await FileStorage.open(disk / "raft")
        text = str(info.value)
        assert text.startswith(f"cannot open {disk / 'raft'}") and "ENOSPC" in text, text


async def test_a_read_only_bind_mount_is_refused_on_start(tmp_path: Path) -> None:
    source = tmp_path / "source"
    async with await FileStorage.open(source) as storage:
        await storage.save(hard_state=HardState(1, 1, 1), entries=[E(1)], snapshot=None)
    (source / "empty").mkdir()
    with _mounted(tmp_path / "ro", "--bind", str(source)) as ro:
        assert _run("mount", "-o", "remount,bind,ro", str(ro)).returncode == 0
        for directory in (ro, ro / "empty", ro / "absent"):
            with pytest.raises(StorageFailed) as info:
                await FileStorage.open(directory)
            text = str(info.value)
            assert "Read-only file system (EROFS" in text and "remount it read-write" in text
    async with await FileStorage.open(source) as again:  # and nothing was changed
        assert (await again.load()).entries == [E(1)]
