"""Seeded storage workloads shaped like a Raft node's, and an obviously-correct reference model.

``workload(seed, n)`` yields operations a real node could issue: appends with hard states,
commit-only saves with ``sync=False``, term/vote changes, overwrites of an uncommitted suffix
(new leader), local snapshots followed by compaction, and snapshots installed from a leader.
Half the snapshots go through a sink (``Storage.begin_snapshot``) as the runtime writes them:
a local one's file is written a part at a time between the other saves (the build runs beside
the raft loop), named, and put in force by ``save_snapshot`` later, or dropped when a snapshot
from the leader overtook it; a received one is spooled, then saved with its batch.

``Model`` is the contract written as plainly as possible (a dict of entries); the storages are
checked against it, never against each other.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from raftkv import StorageFailed
from raftkv.core import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata
from raftkv.storage import PersistedState, SnapshotSink, Storage

SINK_PARTS = 3  # a sink is given its snapshot's data in this many writes


@dataclass(frozen=True)
class Save:
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None = None
    sync: bool = True
    via_sink: bool = False  # the snapshot is the one a sink wrote (see SinkBegin)


@dataclass(frozen=True)
class SaveSnapshot:
    snapshot: Snapshot
    via_sink: bool = False


@dataclass(frozen=True)
class Compact:
    index: int


@dataclass(frozen=True)
class SinkBegin:
    """``begin_snapshot`` for this snapshot (its data is written by ``SinkWrite``s)."""

    snapshot: Snapshot


@dataclass(frozen=True)
class SinkWrite:
    index: int
    part: int  # 0 .. SINK_PARTS - 1


@dataclass(frozen=True)
class SinkFinish:
    index: int


@dataclass(frozen=True)
class SinkAbort:
    index: int


Op = Save | SaveSnapshot | Compact | SinkBegin | SinkWrite | SinkFinish | SinkAbort


def is_durable(op: Op) -> bool:
    """Whether the storage promises ``op`` is durable once it returns."""
    return isinstance(op, SaveSnapshot) or (isinstance(op, Save) and op.sync)


def _part(data: bytes, part: int) -> bytes:
    step = -(-len(data) // SINK_PARTS)
    return data[part * step : (part + 1) * step]


@dataclass
class _SinkState:
    snapshot: Snapshot
    sink: SnapshotSink
    written: int = 0  # parts written
    finished: Snapshot | None = None


# The sinks a storage has open, by snapshot index; a restarted storage has none, and a sink the
# workload still uses is opened again and given what it had (as a rebuilt snapshot would be).
_sinks: weakref.WeakKeyDictionary[Storage, dict[int, _SinkState]] = weakref.WeakKeyDictionary()


async def _sink(storage: Storage, snapshot: Snapshot, parts: int) -> _SinkState:
    sinks = _sinks.setdefault(storage, {})
    state = sinks.get(snapshot.metadata.index)
    if state is None:
        state = sinks[snapshot.metadata.index] = _SinkState(
            snapshot, storage.begin_snapshot(snapshot.metadata)
        )
    while state.written < parts:
        await state.sink.write(_part(snapshot.data, state.written))
        state.written += 1
    return state


async def _sink_snapshot(storage: Storage, snapshot: Snapshot) -> Snapshot:
    """The snapshot a sink of ``storage`` wrote (finishing the sink if need be)."""
    state = await _sink(storage, snapshot, SINK_PARTS)
    if state.finished is None:
        state.finished = await state.sink.finish()
        assert state.finished == snapshot, "a sink returns the snapshot it was given"
    del _sinks[storage][snapshot.metadata.index]
    return state.finished


async def _apply_sink(storage: Storage, op: SinkBegin | SinkWrite | SinkFinish | SinkAbort) -> None:
    if isinstance(op, SinkBegin):
        await _sink(storage, op.snapshot, 0)
        return
    state = _sinks.get(storage, {}).get(op.index)
    if isinstance(op, SinkAbort):
        if state is not None:
            state.sink.abort()
            del _sinks[storage][op.index]
        return
    if state is None:
        return  # opened before a restart: it is opened again when the workload needs it
    if isinstance(op, SinkWrite):
        await _sink(storage, state.snapshot, op.part + 1)
    else:
        await _sink(storage, state.snapshot, SINK_PARTS)
        state.finished = await state.sink.finish()
        assert state.finished == state.snapshot


async def apply(storage: Storage, op: Op) -> None:
    if isinstance(op, Save):
        snapshot = op.snapshot
        if op.via_sink and snapshot is not None:
            snapshot = await _sink_snapshot(storage, snapshot)
        await storage.save(
            hard_state=op.hard_state, entries=op.entries, snapshot=snapshot, sync=op.sync
        )
    elif isinstance(op, SaveSnapshot):
        snapshot = await _sink_snapshot(storage, op.snapshot) if op.via_sink else op.snapshot
        await storage.save_snapshot(snapshot)
    elif isinstance(op, Compact):
        await storage.compact(op.index)
    else:
        await _apply_sink(storage, op)


@dataclass
class Model:
    """The storage contract, plainly: what load() must return after a clean or a crash restart."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    log: dict[int, Entry] = field(default_factory=dict)
    pending: list[Save] = field(default_factory=list)

    def _apply(self, op: Save) -> None:
        if op.snapshot is not None:
            self.snapshot = op.snapshot
            self.log = {}
        if op.entries:
            first = op.entries[0].index
            self.log = {i: e for i, e in self.log.items() if i < first}
            self.log.update((e.index, e) for e in op.entries)
        if op.hard_state is not None:
            self.hard_state = op.hard_state

    def _flush(self) -> None:
        for p in self.pending:
            self._apply(p)
        self.pending.clear()

    def step(self, op: Op) -> None:
        if isinstance(op, Save):
            if op.sync or op.snapshot is not None:
                self._flush()
                self._apply(op)
            else:
                self.pending.append(op)
        elif isinstance(op, SaveSnapshot):
            self._flush()
            self.snapshot = op.snapshot
        # Sink operations change nothing until their snapshot is saved.

    def close(self) -> None:
        self._flush()

    def crash(self) -> None:
        self.pending.clear()

    def durable(self) -> PersistedState:
        base = 0 if self.snapshot is None else self.snapshot.metadata.index
        entries = [self.log[i] for i in sorted(self.log) if i > base]
        return PersistedState(self.hard_state, self.snapshot, entries)

    def copy(self) -> Model:
        return Model(self.hard_state, self.snapshot, dict(self.log), list(self.pending))


def _data(rng: random.Random) -> bytes:
    size = rng.choice((0, 8, 40, 100, 100, 100, 300)) if rng.random() < 0.97 else 1500
    return rng.randbytes(size)


def _snapshot(rng: random.Random, index: int, term: int) -> Snapshot:
    conf = ConfState.of(voters=rng.sample(range(1, 6), 3))
    return Snapshot(SnapshotMetadata(index, term, conf), rng.randbytes(rng.randrange(0, 600)))


def _entries(
    rng: random.Random, term: int, terms: dict[int, int], first: int, count: int
) -> tuple[Entry, ...]:
    """``count`` entries of ``term`` from index ``first``, recorded in ``terms``."""
    out = []
    for i in range(first, first + count):
        kind = EntryType.CONF_CHANGE if rng.random() < 0.05 else EntryType.NORMAL
        out.append(Entry(term, i, kind, _data(rng)))
        terms[i] = term
    return tuple(out)


def _sink_steps(snapshot: Snapshot) -> list[Op]:
    index = snapshot.metadata.index
    return [*(SinkWrite(index, p) for p in range(SINK_PARTS)), SinkFinish(index)]


def workload(seed: int, n: int) -> Iterator[Op]:
    """``n`` Raft-shaped storage operations from ``seed`` (and the sink steps between them)."""
    rng = random.Random(seed)
    term, vote, commit, snap = 1, 1, 0, 0
    terms: dict[int, int] = {}  # index -> term of the live log
    last = 0
    # A local snapshot being written through a sink: its steps, taken between other saves.
    building: list[Op] = []
    snap_building = 0  # its index

    def hs() -> HardState:
        return HardState(term, vote, commit)

    def entries(first: int, count: int) -> tuple[Entry, ...]:
        return _entries(rng, term, terms, first, count)

    for _ in range(n):
        if building and rng.random() < 0.5:
            yield building.pop(0)
            continue
        r = rng.random()
        if r < 0.45:  # the leader appends; the commit index follows some of it
            count = rng.choice((1, 1, 2, 3, 5, 8, 20))
            batch = entries(last + 1, count)
            last += count
            commit = rng.randint(commit, last)
            yield Save(hs() if rng.random() < 0.8 else None, batch)
        elif r < 0.55:  # only the commit index moved: Raft does not ask for a sync
            if commit < last:
                commit = rng.randint(commit + 1, last)
                yield Save(hs(), (), sync=False)
        elif r < 0.60:  # entries saved without a sync (allowed by the protocol)
            batch = entries(last + 1, rng.randint(1, 3))
            last += len(batch)
            yield Save(None, batch, sync=False)
        elif r < 0.68:  # a new term and a vote
            term += 1
            vote = rng.randint(1, 5)
            yield Save(hs(), ())
        elif r < 0.80:  # a new leader overwrites an uncommitted suffix
            low = max(commit, snap) + 1
            if low <= last:
                term += 1
                first = rng.randint(low, last)
                for i in range(first, last + 1):
                    terms.pop(i, None)
                batch = entries(first, rng.randint(1, 6))
                last = first + len(batch) - 1
                yield Save(hs(), batch)
        elif r < 0.92:  # a local snapshot, then compaction keeping a catch-up tail
            if commit > snap and not building:
                index = rng.randint(snap + 1, commit)
                snap = index
                snapshot = _snapshot(rng, index, terms[index])
                keep = Compact(index - rng.choice((0, 3, 10, 50)))
                if rng.random() < 0.5:
                    yield SaveSnapshot(snapshot)
                    yield keep
                else:  # built beside the saves, put in force later
                    yield SinkBegin(snapshot)
                    building = [*_sink_steps(snapshot), SaveSnapshot(snapshot, True), keep]
                    snap_building = index
        else:  # a snapshot from the leader replaces the log
            if building:  # it overtakes the one being built, which is dropped
                yield SinkAbort(snap_building)
                building = []
            index = max(last, commit) + rng.randint(1, 10)
            term += rng.choice((0, 1))
            snapshot = _snapshot(rng, index, term)
            terms.clear()
            terms[index] = term
            snap = last = commit = index
            batch = entries(index + 1, rng.randint(0, 3))
            last += len(batch)
            via_sink = rng.random() < 0.5  # spooled as it arrived, then saved
            if via_sink:
                yield SinkBegin(snapshot)
                yield from _sink_steps(snapshot)
            yield Save(hs(), batch, snapshot=snapshot, via_sink=via_sink)


def run_model(ops: Sequence[Op]) -> list[PersistedState]:
    """``states[j]``: the state once ops[:j+1] were applied with every pending save synced."""
    model = Model()
    states = []
    for op in ops:
        model.step(op)
        shadow = model.copy()
        shadow.close()
        states.append(shadow.durable())
    return states


async def end_with_local_snapshot(storage: Storage, *, data: bytes = b"state") -> PersistedState:
    """Commit the whole log and take a local snapshot of it, so that the WAL's last record is
    the ``SNAPSHOT`` record naming it (the previous snapshot file is then deleted). Returns the
    state ``load`` must return from now on."""
    state = await storage.load()
    assert state.snapshot is not None, "the workload must have saved a snapshot already"
    last = state.entries[-1] if state.entries else None
    if last is None:  # nothing after the snapshot: append an entry to take the next one at
        hs = state.hard_state
        last = Entry(hs.term, state.snapshot.metadata.index + 1, EntryType.NORMAL, b"tail")
        await storage.save(hard_state=None, entries=(last,), snapshot=None)
    hs = HardState(state.hard_state.term, state.hard_state.vote, last.index)
    await storage.save(hard_state=hs, entries=(), snapshot=None)
    conf = state.snapshot.metadata.conf_state
    snapshot = Snapshot(SnapshotMetadata(last.index, last.term, conf), data)
    await storage.save_snapshot(snapshot)
    return PersistedState(hs, snapshot, [])


async def assert_refuses(storage: Storage) -> None:
    """After a failed durable write: every call refuses, and closing still releases it."""
    with pytest.raises(StorageFailed, match="refusing further calls"):
        await storage.save(hard_state=HardState(9), entries=[], snapshot=None)
    conf = ConfState.of(voters=[1])
    with pytest.raises(StorageFailed):
        await storage.save_snapshot(Snapshot(SnapshotMetadata(10_000, 1, conf), b"state"))
    with pytest.raises(StorageFailed):
        await storage.compact(1)
    with pytest.raises(StorageFailed):
        await storage.load()
    await storage.aclose()
