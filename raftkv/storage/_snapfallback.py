"""Recovery's snapshot fallback: the WAL names a snapshot file that is gone, a newer one is intact.

How it happens. ``save_snapshot`` writes the new snapshot file (synced, renamed, directory
synced), then the WAL record naming it (synced), and only then deletes the previous file. A
crash can therefore never leave the WAL naming a deleted file. Damage to the *durable* tail
can: if the last record (the one naming the new snapshot), or more of the tail, is torn off
or flipped afterwards, recovery drops it like a torn write, and what is left of the WAL names
the previous snapshot, already deleted.

Why adopting the newer file is safe. Every snapshot file in the directory was written by this
storage and names itself (``snap-<term>-<index>.snap``); its checksum covers all of it. A
snapshot holds only committed state (the state machine's applied entries, or a leader's
committed state), and it was durable before any record naming it. So the newest snapshot file
that verifies, newer than the one the WAL names, is a committed prefix of the log that this
node had made durable; it is adopted when it is also consistent with what is left of the WAL:

- the hard state's term is at least the snapshot's (nothing is invented about terms or votes);
- if the WAL still holds the entry at the snapshot's index with the snapshot's term, the
  entries after it stay (Log Matching: the same (index, term) means the same history);
- if the WAL's log ends before the snapshot's index, every entry in it is covered;
- if the WAL holds that index with another term, that entry was never committed (the
  snapshot's was), so the log is discarded as installing a snapshot does; unless the hard
  state says it was committed: then the two contradict each other and recovery refuses;
- the commit index becomes at least the snapshot's index: the snapshot proves it committed.

The repair is written as one ``BATCH`` record naming the adopted file (with the entries that
stay and the hard state), the same record a snapshot received from a leader makes. When no
fallback is possible, the error says which snapshot files exist and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .._errors import CorruptSnapshot, StorageMismatch
from ..core import Entry, HardState, Snapshot
from ._base import PersistedState
from ._fs import FileSystem
from ._records import SnapshotRef
from ._recovery import WalState
from ._snapfile import parse_snapshot_name, read_unnamed_snapshot_file

__all__ = ["SnapshotFallback", "plan_snapshot_fallback"]


@dataclass(frozen=True, slots=True)
class SnapshotFallback:
    """What recovery adopts instead of the missing snapshot, and what that changed."""

    missing: SnapshotRef  # the snapshot the WAL names
    ref: SnapshotRef  # the file adopted, as the repair record names it
    snapshot: Snapshot
    hard_state: HardState
    # The WAL's entries after the adopted snapshot that stay (the log after it).
    entries: list[Entry] = field(default_factory=list)
    covered: int = 0  # WAL entries after the missing snapshot that the adopted one covers
    discarded: int = 0  # uncommitted WAL entries after it that conflict with it
    old_commit: int = 0

    def state(self) -> PersistedState:
        return PersistedState(self.hard_state, self.snapshot, list(self.entries))

    def describe(self, directory: str) -> str:
        meta = self.ref.metadata
        discarded = (
            f", {self.discarded} uncommitted entries after it that conflict with it discarded"
            if self.discarded
            else ""
        )
        commit = (
            f"commit index raised from {self.old_commit} to {self.hard_state.commit}"
            if self.hard_state.commit != self.old_commit
            else f"commit index {self.hard_state.commit} kept"
        )
        return (
            f"{directory}: the WAL named snapshot {self.missing.name} (index "
            f"{self.missing.index}), which is missing (the WAL's tail that named a newer "
            f"one was lost); recovered from {self.ref.name} (index {meta.index}, term "
            f"{meta.term}), whose checksum verifies: it covers the WAL's {self.covered} "
            f"entries after index {self.missing.index}; {len(self.entries)} entries after it "
            f"kept{discarded}; {commit}"
        )


def plan_snapshot_fallback(
    fs: FileSystem, directory: str, wal: WalState, names: list[str]
) -> SnapshotFallback:
    """The fallback for a WAL whose snapshot file is missing; ``StorageMismatch`` if none."""
    missing = wal.snapshot
    assert missing is not None, "only a WAL naming a snapshot can miss one"
    found = sorted((parsed, n) for n in names if (parsed := parse_snapshot_name(n)) is not None)
    if not found or found[-1][0][0] <= missing.index:
        raise _unrepairable(directory, missing, found, "no newer snapshot file exists")
    newest = found[-1][1]
    try:
        snapshot, ref = read_unnamed_snapshot_file(fs, directory, newest)
    except CorruptSnapshot as exc:
        raise _unrepairable(
            directory, missing, found, f"the newest one is damaged ({exc})"
        ) from None
    hs = wal.hard_state or HardState()
    index, term = ref.index, ref.metadata.term
    if hs.term < term:
        reason = f"{newest} has term {term}, beyond the hard state's term {hs.term}"
        raise _unrepairable(directory, missing, found, reason)
    entries = wal.entries
    covered = sum(1 for e in entries if missing.index < e.index <= index)
    kept: list[Entry] = []
    if entries and entries[0].index > index:
        reason = f"the WAL's entries start at {entries[0].index}, after {newest}'s index {index}"
        raise _unrepairable(directory, missing, found, reason)
    if entries and entries[-1].index >= index:
        at = entries[index - entries[0].index]
        if at.term == term:
            kept = entries[index + 1 - entries[0].index :]
        elif hs.commit >= index:
            reason = f"the WAL's committed entry {index} has term {at.term}, {newest} says {term}"
            raise _unrepairable(directory, missing, found, reason)
    hard_state = HardState(hs.term, hs.vote, max(hs.commit, index))
    last = kept[-1].index if kept else index
    if hard_state.commit > last:
        reason = f"the hard state's commit index {hs.commit} is beyond the log's last {last}"
        raise _unrepairable(directory, missing, found, reason)
    return SnapshotFallback(
        missing=missing,
        ref=ref,
        snapshot=snapshot,
        hard_state=hard_state,
        entries=kept,
        covered=covered,
        discarded=sum(1 for e in entries if e.index > index) - len(kept),
        old_commit=hs.commit,
    )


def _unrepairable(
    directory: str,
    missing: SnapshotRef,
    found: list[tuple[tuple[int, int], str]],
    reason: str,
) -> StorageMismatch:
    files = (
        ", ".join(f"{name} (index {index}, term {term})" for (index, term), name in found) or "none"
    )
    return StorageMismatch(
        f"snapshot file {os.path.join(directory, missing.name)} (index {missing.index}) is "
        f"named in the WAL but missing, and recovery cannot fall back to a newer one: "
        f"{reason}. Snapshot files in {directory}: {files}. Put the missing file back (from a "
        f"backup of this directory); or, if other members of the cluster hold the data, "
        f"remove this member, clear its data directory and add it back as a new member: the "
        f"leader then sends it a snapshot"
    )
