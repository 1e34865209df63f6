"""The ``Storage`` protocol: the runtime's durable memory (async, one task calls it at a time).

The runtime calls, in order, for every ``Ready``::

    await storage.save(hard_state=rd.hard_state, entries=rd.entries, snapshot=rd.snapshot,
                       sync=rd.must_sync)      # one durability barrier for the whole batch

and, from time to time, after taking a snapshot of its state machine::

    sink = storage.begin_snapshot(metadata)    # from any task, beside the saves above
    await sink.write(chunk) ...                # written and synced a little at a time
    snapshot = await sink.finish()             # durable, named, not yet in force
    await storage.save_snapshot(snapshot)      # raft loop: the WAL record naming it (cheap)
    await storage.compact(keep_from)           # release what is older than keep_from

A snapshot received from the leader may be written through a sink the same way (the transport
spools it), then given to ``save(snapshot=...)``; a snapshot not from a sink is written by
``save``/``save_snapshot`` themselves. A sink's ``finish`` returns None when a snapshot of that
index and term is already written (nothing is kept then); ``abort()`` drops its file.

``load()`` on start returns exactly what was saved durably: the newest snapshot, the hard state
and the entries after the snapshot (an entry saved at index i replaces every earlier-saved entry
>= i). ``save`` returns only once everything it was given is durable when ``sync`` is true; if it
cannot, it raises ``StorageFailed`` and the storage refuses all further calls (the node stops;
nothing is retried, nothing is acknowledged).

The finer points, which ``MemoryStorage`` and ``FileStorage`` share (tests/storage checks both):

- ``save(sync=False)`` promises nothing: it may be held in memory until the next synced save
  (which then makes both durable with one barrier) or ``aclose``. Raft asks for no sync only
  when nothing but the commit index changed.
- ``save(snapshot=s)`` (a snapshot received from the leader) replaces the whole log: the
  entries given with it follow ``s``. ``save_snapshot(s)`` (taken locally) keeps the entries
  after ``s``; both require ``s`` newer than the saved snapshot.
- ``compact(i)`` may release entries below ``i``, but never one the snapshot does not cover.
  ``load`` returns only entries after the snapshot whatever was compacted.
- A sink may run while ``save`` does (it never touches the log); only ``save_snapshot`` or
  ``save`` puts its snapshot in force, and until then a crash forgets it.
- Misuse (a gap after the last index, an older snapshot) raises ``ValueError`` and changes
  nothing; a call after ``aclose`` raises ``trio.ClosedResourceError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..core import Entry, HardState, Snapshot, SnapshotMetadata

__all__ = ["PersistedState", "SnapshotSink", "Storage"]


@dataclass(slots=True)
class PersistedState:
    """What a node finds on disk when it starts."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    # Entries after the snapshot's index, contiguous and ascending.
    entries: list[Entry] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return self.hard_state == HardState() and self.snapshot is None and not self.entries


class SnapshotSink(Protocol):
    """Where a snapshot's data is written, a piece at a time (``Storage.begin_snapshot``)."""

    async def write(self, data: bytes) -> None: ...

    async def finish(self) -> Snapshot | None: ...

    def abort(self) -> None: ...


@runtime_checkable
class Storage(Protocol):
    async def load(self) -> PersistedState: ...

    async def save(
        self,
        *,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None,
        sync: bool = True,
    ) -> None: ...

    async def save_snapshot(self, snapshot: Snapshot) -> None: ...

    def begin_snapshot(self, metadata: SnapshotMetadata) -> SnapshotSink: ...

    async def compact(self, index: int) -> None: ...

    async def aclose(self) -> None: ...
