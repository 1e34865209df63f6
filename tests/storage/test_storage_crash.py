"""Crash-state enumeration: FileStorage recovers from every disk state a power cut may leave.

A Raft-shaped workload (appends, unsynced commit saves, overwrites, local and installed snapshots,
compaction, segment rollover every few records) runs on ``SimFileSystem``. Half its snapshots
are written through a sink as the runtime writes them: a local one's file a few bytes at a time
(written and synced every ``PACE`` bytes) between the other saves, named, then put in force by
its WAL record later (or dropped); a received one spooled, then saved. The trace which records every
write, sync, create, rename and unlink. After every operation of that trace we cut the power,
several ways (``SimFileSystem.crash``): unsynced writes all lost, all kept, torn at a random byte,
or a random subset reordered and partly written. Recovery must then

- never fail (a torn tail is repaired, never refused),
- lose nothing that was durable: the state is at least the one after the last save that
  returned with a sync,
- invent nothing: the state is exactly the one after some save between that one and the save
  in flight.

Crashes during the repair itself are enumerated the same way for states that needed one.

Damage no crash can cause is covered too: a durable last record naming the newest snapshot
(the older file already deleted) cut anywhere; recovery falls back to that snapshot file.
"""

from __future__ import annotations

import random

import pytest
from storage_workload import (
    Op,
    SinkFinish,
    SinkWrite,
    apply,
    end_with_local_snapshot,
    is_durable,
    run_model,
    workload,
)

from raftkv import StorageMismatch
from raftkv.storage import CrashMode, FileStorage, PersistedState, SimFileSystem
from raftkv.storage._records import RecordType, leading_frames
from raftkv.storage._simfs import Link, Mark, Resize, Unlink, Write

DIR = "/data"
SEGMENT_BYTES = 4096  # a rollover every dozen records or so
PACE = 64  # a sink writes and syncs its file every 64 bytes: many steps between other saves
MODES: tuple[tuple[CrashMode, int], ...] = (("lost", 1), ("kept", 1), ("torn", 1), ("reordered", 2))
# Right after a write and before its sync, the interesting cases: more torn and reordered cuts.
MODES_UNSYNCED: tuple[tuple[CrashMode, int], ...] = (*MODES, ("torn", 3), ("reordered", 3))


async def _open(fs: SimFileSystem) -> FileStorage:
    return await FileStorage.open(
        DIR, segment_bytes=SEGMENT_BYTES, thread_io="never", snapshot_pace_bytes=PACE, fs=fs
    )


async def _run(seed: int, n: int) -> tuple[SimFileSystem, list[Op]]:
    fs = SimFileSystem(dirs=[DIR])
    storage = await _open(fs)
    ops = list(workload(seed, n))
    for j, op in enumerate(ops):
        fs.mark(("begin", j))
        await apply(storage, op)
        fs.mark(("end", j))
    return fs, ops


async def _recover(fs: SimFileSystem) -> PersistedState:
    storage = await _open(fs)
    state = await storage.load()
    await storage.aclose()
    return state


def _crash_points(fs: SimFileSystem) -> list[tuple[int, bool]]:
    """Every distinct point to cut the power (after each disk operation and its trailing marks),
    and whether the operation just before it was a write."""
    points = [(0, False)]
    trace = fs.trace
    for k, op in enumerate(trace):
        if not isinstance(op, Mark):
            end = k + 1
            while end < len(trace) and isinstance(trace[end], Mark):
                end += 1
            points.append((end, isinstance(op, Write)))
    return points


def _bounds(fs: SimFileSystem, ops: list[Op], upto: int) -> tuple[int, int]:
    """(last durable op that returned, last op begun) before trace[upto]; -1: none."""
    durable, begun = -1, -1
    for op in fs.trace[:upto]:
        if isinstance(op, Mark):
            kind, j = op.label  # type: ignore[misc]
            if kind == "begin":
                begun = j
            elif is_durable(ops[j]):
                durable = j
    return durable, begun


def _in_sink(fs: SimFileSystem, ops: list[Op], upto: int) -> bool:
    """Whether the power is cut while a sink's file is written, beside the WAL's saves."""
    begun = [op for op in fs.trace[:upto] if isinstance(op, Mark)]
    if not begun:
        return False
    kind, j = begun[-1].label  # type: ignore[misc]
    return kind == "begin" and isinstance(ops[j], SinkWrite | SinkFinish)


async def _enumerate(seed: int, n: int) -> tuple[int, int, int]:
    fs, ops = await _run(seed, n)
    states = [PersistedState(), *run_model(ops)]  # states[j + 1]: after ops[j]
    rng = random.Random(seed)
    checked = repairs = in_sink = 0
    for upto, after_write in _crash_points(fs):
        in_sink += _in_sink(fs, ops, upto)
        durable, begun = _bounds(fs, ops, upto)
        allowed = states[durable + 1 : begun + 2]
        for mode, times in MODES_UNSYNCED if after_write else MODES:
            for _ in range(times):
                image = fs.crash(rng, mode, upto)
                state = await _recover(image.crash(rng, "kept"))  # recover a copy
                checked += 1
                assert state in allowed, (
                    f"seed {seed}, crash after trace[:{upto}] ({mode}): recovered a state that "
                    f"was never saved, or lost a durable one (ops {durable}..{begun})"
                )
                repairs += await _crash_during_recovery(image, state, rng)
    return checked, repairs, in_sink


async def _crash_during_recovery(
    image: SimFileSystem, expected: PersistedState, rng: random.Random
) -> int:
    """If recovery repaired or cleaned up, cut the power at each of its steps; same state."""
    first = image.crash(rng, "kept")
    await _recover(first)
    if not any(
        isinstance(op, Link | Unlink) or (isinstance(op, Resize) and not op.grow_only)
        for op in first.trace
    ):
        return 0
    for upto in range(len(first.trace) + 1):
        again = first.crash(rng, "reordered" if upto % 2 else "lost", upto)
        assert await _recover(again) == expected
    return len(first.trace) + 1


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_crash_state_enumeration(seed: int) -> None:
    checked, repaired, in_sink = await _enumerate(seed, 110)
    assert checked >= 2000, checked  # each seed alone meets the bar
    assert repaired > 0
    assert in_sink >= 20, in_sink  # cuts while a snapshot file is written beside the saves
    print(
        f"seed {seed}: {checked} crash states, {repaired} crashes during recovery, "
        f"{in_sink} cut points inside a sink"
    )


async def _ending_with_a_snapshot_record(seed: int) -> tuple[dict[str, bytes], PersistedState]:
    fs = SimFileSystem(dirs=[DIR])
    storage = await _open(fs)
    for op in workload(seed, 110):
        await apply(storage, op)
    expected = await end_with_local_snapshot(storage)
    await storage.aclose()
    return fs.image(), expected


@pytest.mark.parametrize("seed", [4, 5])
async def test_a_damaged_snapshot_record_at_the_tail_is_repaired_even_across_crashes(
    seed: int,
) -> None:
    """The durable last record names the newest snapshot, the older file is deleted; the
    segment is then cut at every byte of that record, and at every 7th of the records before
    it (whole records lost, more than any crash can do). Recovery falls back to the snapshot
    file: nothing acknowledged is lost (nothing followed the snapshot), or, only where whole
    records were lost, it refuses with a clear error (a lost term change: the hard state's
    term is then older than the snapshot's). Every power cut during the repair recovers the
    same state."""
    files, expected = await _ending_with_a_snapshot_record(seed)
    snapshot = expected.snapshot
    assert snapshot is not None
    last = max(p for p in files if p.endswith(".wal"))
    records = leading_frames(files[last])
    tail = records[-1]
    assert tail.type is RecordType.SNAPSHOT
    rng = random.Random(seed)
    cuts = [*range(tail.offset, tail.end), *range(records[0].end, tail.offset, 7)]
    repaired = refused = crashes = 0
    for cut in cuts:
        image = SimFileSystem({**files, last: files[last][:cut]}, dirs=[DIR])
        try:
            state = await _recover(image.crash(rng, "kept"))
        except StorageMismatch as exc:
            assert cut < tail.offset, f"cut at {cut}, inside the last record: refused ({exc})"
            assert "Put the missing file back" in str(exc)
            refused += 1
            continue
        repaired += 1
        if cut >= tail.offset:
            assert state == expected, f"cut at {cut}: a different state"
            crashes += await _crash_during_recovery(image, expected, rng)
        else:  # records before the snapshot's were lost too; the snapshot holds their entries
            assert (state.snapshot, state.entries) == (snapshot, []), f"cut at {cut}"
            assert state.hard_state.commit == snapshot.metadata.index
            assert state.hard_state.term >= snapshot.metadata.term
    assert repaired >= tail.end - tail.offset  # every cut inside the record, and some before
    assert crashes > 0
    print(f"seed {seed}: {repaired} repaired, {refused} refused, {crashes} crash states")
