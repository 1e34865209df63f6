"""WAL segments: naming, creation, appending with rollover, and release of old segments.

A segment is ``<seq:016x>-<first_index:016x>.wal``: ``seq`` counts up from 0 without gaps (a
gap means a lost file), ``first_index`` is informational (the log's next index when the segment
was started). Its first record is a ``HEADER`` repeating the hard state and snapshot in force.

Write ordering, which recovery relies on:

- a new segment is written (header, preallocation, fdatasync) as ``<name>.tmp`` and renamed into
  place, then the directory is fsynced: a visible segment always has a durable header;
- the previous segment is first truncated to its last record and fdatasync'd, so only the last
  segment can hold bytes that are not records;
- every record is one ``pwrite`` followed by one ``fdatasync`` before anything else is written,
  so at most the last record of the last segment can be damaged by a crash; after the sync the
  segment must still have a name (a removed directory takes it away, and writes to a deleted
  file succeed, to be lost);
- old segments are unlinked oldest first, with a directory fsync after each, so a crash in the
  middle never leaves a hole in the sequence.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass

from .._codec import CODEC_VERSION
from ..core import HardState
from ._fs import FileSystem, remove_if_exists
from ._records import (
    OVERHEAD,
    RecordType,
    SegmentHeader,
    SnapshotRef,
    encode_header,
    frame,
)

__all__ = [
    "Segment",
    "WalWriter",
    "create_segment",
    "parse_segment_name",
    "preallocate_if_room",
    "segment_name",
]

logger = logging.getLogger("raftkv.storage")

SEGMENT_SUFFIX = ".wal"
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The segment's sequence number, or None if ``name`` is not a segment."""
    m = _NAME.match(name)
    return int(m.group(1), 16) if m else None


@dataclass(slots=True)
class Segment:
    seq: int
    name: str
    # Invariant: the highest entry index recorded in this segment (0: none).
    max_index: int = 0


def preallocate_if_room(fs: FileSystem, fd: int, target: int, *, path: str, size: int) -> None:
    """Preallocate the segment open as ``fd`` (now ``size`` bytes) to ``target`` bytes, or, if
    the disk has not that much free, leave it as it is: preallocation only makes syncs cheaper,
    and a disk that is really full fails the writes themselves, clearly (``StorageFailed``)."""
    try:
        fs.preallocate(fd, target)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        fs.ftruncate(fd, size)  # give back what a partial preallocation took
        logger.warning(
            "%s: not enough free space to preallocate %d bytes (%s); written without",
            path,
            target,
            exc.strerror,
        )


def create_segment(
    fs: FileSystem,
    directory: str,
    *,
    seq: int,
    first_index: int,
    header: SegmentHeader,
    preallocate: int,
) -> tuple[Segment, int, int]:
    """A new durable segment holding only its header: (segment, fd, write offset)."""
    name = segment_name(seq, first_index)
    path = os.path.join(directory, name)
    tmp = path + ".tmp"
    remove_if_exists(fs, tmp)
    fd = fs.create(tmp)
    try:
        data = frame(RecordType.HEADER, encode_header(header), 0)
        fs.pwrite(fd, data, 0)
        if preallocate > len(data):
            preallocate_if_room(fs, fd, preallocate, path=path, size=len(data))
        fs.fdatasync(fd)
        fs.rename(tmp, path)
        fs.fsync_dir(directory)
    except BaseException:
        fs.close(fd)
        raise
    return Segment(seq, name), fd, len(data)


class WalWriter:
    """Appends records to the last segment; one ``pwrite`` and one ``fdatasync`` per record.

    Not thread-safe; ``FileStorage`` calls it from one thread at a time. Any ``OSError`` leaves
    it in an unknown state: the caller must stop using it.
    """

    def __init__(
        self,
        fs: FileSystem,
        directory: str,
        segments: list[Segment],
        *,
        fd: int,
        offset: int,
        records_start: int,
        hard_state: HardState | None,
        snapshot: SnapshotRef | None,
        segment_bytes: int,
        preallocate: bool,
    ) -> None:
        self._fs = fs
        self._dir = directory
        # Invariant: ascending seq without gaps; the last one is open as ``_fd``.
        self.segments = segments
        self._fd: int | None = fd
        self._offset = offset
        self._records_start = records_start  # the end of the last segment's header
        # What the WAL says so far, repeated in the header of the next segment.
        self.hard_state = hard_state
        self.snapshot = snapshot
        self._segment_bytes = segment_bytes
        self._preallocate = segment_bytes if preallocate else 0
        # A file system that counts no links (a few FUSE ones) cannot tell a deleted segment.
        self._watch_links = fs.links(fd) > 0
        self.syncs = 0
        self.bytes_written = 0

    def append(
        self,
        rtype: RecordType,
        payload: bytes,
        *,
        hard_state: HardState | None,
        snapshot: SnapshotRef | None,
        max_index: int,
        next_index: int,
    ) -> None:
        """Write one record durably; ``hard_state``/``snapshot`` are what it sets (None: keep).

        ``next_index`` (the log's next index before this record) only names a new segment.
        """
        assert self._fd is not None, "writer closed"
        # Roll over when full, but never leave a segment without a record (huge records).
        if (
            self._offset + OVERHEAD + len(payload) > self._segment_bytes
            and self._offset > self._records_start
        ):
            self._roll(next_index)
        data = frame(rtype, payload, self._offset)
        self._fs.pwrite(self._fd, data, self._offset)
        self._fs.fdatasync(self._fd)
        if self._watch_links and self._fs.links(self._fd) == 0:
            # Writing to a deleted file succeeds, and is lost: the directory was removed.
            path = os.path.join(self._dir, self.segments[-1].name)
            raise FileNotFoundError(errno.ENOENT, "the open WAL segment was deleted", path)
        self.syncs += 1
        self.bytes_written += len(data)
        self._offset += len(data)
        seg = self.segments[-1]
        seg.max_index = max(seg.max_index, max_index)
        if hard_state is not None:
            self.hard_state = hard_state
        if snapshot is not None:
            self.snapshot = snapshot

    def room(self) -> int:
        """Bytes left in the last segment before the next record starts a new one."""
        return self._segment_bytes - self._offset - OVERHEAD

    def _roll(self, next_index: int) -> None:
        assert self._fd is not None
        self._fs.ftruncate(self._fd, self._offset)
        self._fs.fdatasync(self._fd)
        self._fs.close(self._fd)
        self._fd = None
        seq = self.segments[-1].seq + 1
        header = SegmentHeader(CODEC_VERSION, seq, self.hard_state, self.snapshot)
        seg, fd, offset = create_segment(
            self._fs,
            self._dir,
            seq=seq,
            first_index=next_index,
            header=header,
            preallocate=self._preallocate,
        )
        self.segments.append(seg)
        self._fd, self._offset = fd, offset
        self._records_start = offset
        self.syncs += 3  # old segment, new segment, directory

    def release(self, bound: int) -> int:
        """Delete the oldest segments whose entries are all below ``bound``; how many."""
        n = 0
        for seg in self.segments[:-1]:
            if seg.max_index >= bound:
                break
            self._fs.unlink(os.path.join(self._dir, seg.name))
            self._fs.fsync_dir(self._dir)
            n += 1
        del self.segments[:n]
        return n

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            self._fs.close(fd)
