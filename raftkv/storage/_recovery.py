"""Reading a data directory back: replay the WAL, judge any damage, plan the one allowed repair.

Rules (the write ordering in ``_wal`` is what makes them sound):

- Segment sequence numbers must be contiguous: a hole is ``StorageMismatch``.
- Every segment starts with an intact ``HEADER`` whose hard state and snapshot equal what the
  segments before it say (it was durable before its name appeared): otherwise ``CorruptLog`` or
  ``StorageMismatch``.
- A finished (not last) segment is records only, to its last byte: anything else is
  ``CorruptLog`` naming the file and offset.
- In the last segment, the first bad record at offset X is
  - the end of the log if only zeros follow (preallocated space, or a write whose size reached
    the disk but not its data);
  - a torn tail if no intact record follows X: the only write that can be incomplete after a
    crash is the last one, so this is the repair case (bytes kept aside, file truncated to X);
  - ``CorruptLog`` if an intact record follows: that record was written after X was synced.
- The entries must reach back to the snapshot (or to index 1), the commit index must lie
  within the log, and the snapshot the WAL names must exist (``read_snapshot_file`` checks it):
  otherwise ``StorageMismatch``. (Where it is missing because the durable tail that named a
  newer one was lost, ``_snapfallback`` may adopt that newer file instead.)

Nothing here writes; ``FileStorage`` applies the repair only after every check passed.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

from .._codec import CODEC_VERSION, CodecError
from .._errors import CorruptLog, StorageMismatch
from ..core import Entry, HardState
from ._entries import splice
from ._fs import FileSystem
from ._records import (
    Frame,
    RecordType,
    SnapshotRef,
    decode_batch,
    decode_hard_state_field,
    decode_header,
    decode_snapshot_record,
    find_frame,
    read_frame,
)
from ._wal import Segment, parse_segment_name

__all__ = ["Damage", "WalState", "scan_wal"]


@dataclass(frozen=True, slots=True)
class Damage:
    """A torn tail: ``data`` (from ``offset`` to the last non-zero byte) goes to a .broken file."""

    path: str
    offset: int
    data: bytes
    reason: str


@dataclass(slots=True)
class WalState:
    hard_state: HardState | None = None
    # The newest hard state not decoded yet, and where it was: (CBOR value, path, offset).
    raw_hard_state: tuple[Any, str, int] | None = None
    snapshot: SnapshotRef | None = None
    # Every live entry still in the WAL, including any the snapshot covers.
    entries: list[Entry] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    tail_offset: int = 0  # where the next record goes in the last segment
    records_start: int = 0  # the end of the last segment's header
    damage: Damage | None = None

    @property
    def snapshot_index(self) -> int:
        return 0 if self.snapshot is None else self.snapshot.index

    def live_entries(self) -> list[Entry]:
        """The entries after the snapshot, checked to reach back to it."""
        entries = self.entries
        base = self.snapshot_index
        if entries and entries[0].index > base + 1:
            raise StorageMismatch(
                f"the WAL's entries start at {entries[0].index} but the snapshot ends at "
                f"{base}: entries {base + 1}..{entries[0].index - 1} are missing"
            )
        if entries and entries[0].index <= base:
            return entries[base + 1 - entries[0].index :]
        return entries


def _segments(names: list[str]) -> list[Segment]:
    found: dict[int, str] = {}
    for name in names:
        seq = parse_segment_name(name)
        if seq is None:
            continue
        if seq in found:
            raise StorageMismatch(f"two WAL segments with sequence number {seq}: {name}")
        found[seq] = name
    segs = [Segment(seq, found[seq]) for seq in sorted(found)]
    for prev, nxt in itertools.pairwise(segs):
        if nxt.seq != prev.seq + 1:
            raise StorageMismatch(
                f"WAL segments {prev.seq + 1}..{nxt.seq - 1} are missing "
                f"(between {prev.name} and {nxt.name})"
            )
    return segs


def _only_zeros(buf: bytes, start: int) -> bool:
    return buf.count(0, start) == len(buf) - start


def scan_wal(fs: FileSystem, directory: str, names: list[str]) -> WalState:
    """Replay every segment in ``directory`` (``names`` is its listing); never writes."""
    state = WalState(segments=_segments(names))
    for i, seg in enumerate(state.segments):
        path = os.path.join(directory, seg.name)
        _scan_segment(state, seg, path, fs.read_file(path), last=i == len(state.segments) - 1)
    _decode_hard_state(state)
    return state


def _decode_hard_state(state: WalState) -> None:
    """Decode the newest hard state seen (older ones never matter; the crc covered them)."""
    if state.raw_hard_state is None:
        return
    raw, path, offset = state.raw_hard_state
    state.raw_hard_state = None
    try:
        state.hard_state = decode_hard_state_field(raw)
    except CodecError as exc:
        raise CorruptLog(path, offset, f"undecodable hard state: {exc}") from None


def _scan_segment(state: WalState, seg: Segment, path: str, buf: bytes, *, last: bool) -> None:
    view = memoryview(buf)
    first = read_frame(buf, 0, view)
    if not isinstance(first, Frame) or first.type is not RecordType.HEADER:
        reason = first if isinstance(first, str) else f"{first.type.name} record before header"
        raise CorruptLog(path, 0, f"bad segment header: {reason}")
    _apply_header(state, seg, path, first)
    state.records_start = first.end
    pos = first.end
    while True:
        rec = read_frame(buf, pos, view)
        if isinstance(rec, str):
            reason = rec
            break
        _apply(state, seg, path, rec)
        pos = rec.end
    state.tail_offset = pos
    if pos == len(buf):
        return
    if not last:
        raise CorruptLog(path, pos, f"{reason} in a finished segment")
    if _only_zeros(buf, pos):
        return
    if find_frame(buf, pos + 1) != -1:
        raise CorruptLog(path, pos, f"{reason}, and intact records follow")
    state.damage = Damage(path, pos, buf[pos:].rstrip(b"\0"), reason)


def _apply_header(state: WalState, seg: Segment, path: str, rec: Frame) -> None:
    try:
        header = decode_header(rec.payload)
    except CodecError as exc:
        raise CorruptLog(path, 0, f"undecodable segment header: {exc}") from None
    if header.version != CODEC_VERSION:
        raise StorageMismatch(f"{path}: WAL format version {header.version} is not supported")
    if header.seq != seg.seq:
        raise CorruptLog(path, 0, f"header says segment {header.seq}")
    _decode_hard_state(state)
    if seg is state.segments[0]:
        state.hard_state, state.snapshot = header.hard_state, header.snapshot
    elif (header.hard_state, header.snapshot) != (state.hard_state, state.snapshot):
        raise StorageMismatch(
            f"{path}: segment header disagrees with the segments before it "
            f"({header.hard_state}, {header.snapshot} != {state.hard_state}, {state.snapshot})"
        )


def _apply(state: WalState, seg: Segment, path: str, rec: Frame) -> None:
    try:
        if rec.type is RecordType.BATCH:
            batch = decode_batch(rec.payload)
            if batch.snapshot is not None:
                # A snapshot received from the leader replaces the whole log.
                state.snapshot = batch.snapshot
                state.entries.clear()
            new = batch.entries
            if new:
                log = state.entries
                if log and new[0].index == log[-1].index + 1:
                    log.extend(new)  # the common case, without splice's checks
                else:
                    splice(log, new)
                seg.max_index = max(seg.max_index, new[-1].index)
            if batch.raw_hard_state is not None:
                state.raw_hard_state = (batch.raw_hard_state, path, rec.offset)
        elif rec.type is RecordType.SNAPSHOT:
            state.snapshot = decode_snapshot_record(rec.payload)
        else:
            raise CorruptLog(path, rec.offset, "segment header in the middle of a segment")
    except CodecError as exc:
        raise CorruptLog(path, rec.offset, f"undecodable record: {exc}") from None
    except ValueError as exc:  # a gap between entries
        raise StorageMismatch(f"{path} at offset {rec.offset}: {exc}") from None
