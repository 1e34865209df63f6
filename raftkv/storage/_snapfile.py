"""Snapshot files: one per snapshot, complete and durable before the WAL names it.

Layout, little-endian::

    0        8         12         16         24      28
    | magic  | version | meta_len | data_len | crc32 | metadata (CBOR) | data

The name is ``snap-<term:016x>-<index:016x>.snap``. A file is written as
``snap-<term>-<index>.<n>.snap.tmp``
(metadata first, then the data as it comes, then the header, which only then knows the data's
length), fdatasync'd, renamed to ``<name>`` and the directory fsynced: the name only ever
appears over complete, durable bytes, and only then is the WAL record naming it written.

``crc32`` covers the metadata, the data, then bytes 0..24 (version 2, written since the data
streams in before its length is known); version 1 files, whose crc32 covers bytes 0..24, the
metadata and the data, still read. Reading checks the checksum a buffer at a time and returns
a ``StoredSnapshot`` over the open file: the data is never held in memory whole.
"""

from __future__ import annotations

import itertools
import os
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from functools import partial

from .._codec import CodecError, decode_snapshot_metadata, dumps, encode_snapshot_metadata, loads
from .._errors import CorruptSnapshot, StorageMismatch
from .._snapdata import SnapshotFile, StoredSnapshot, read_snapshot_data, snapshot_data_size
from ..core import Snapshot, SnapshotMetadata
from ._fs import FileSystem, remove_if_exists
from ._records import SnapshotRef

__all__ = [
    "SNAPSHOT_SUFFIX",
    "SnapshotFileWriter",
    "StoredIn",
    "parse_snapshot_name",
    "read_snapshot_file",
    "read_unnamed_snapshot_file",
    "snapshot_file_name",
    "write_snapshot_file",
]

SNAPSHOT_SUFFIX = ".snap"
_MAGIC = b"\xd7rkSNAP\x00"
_VERSION = 2
_HEAD = struct.Struct("<8sIIQ")
_CRC = struct.Struct("<I")
_HEADER_SIZE = _HEAD.size + _CRC.size
_NAME = re.compile(r"^snap-([0-9a-f]{16})-([0-9a-f]{16})\.snap$")
_READ_BYTES = 1 << 20  # checksums are computed this much at a time
_tmp_counter = itertools.count()


def snapshot_file_name(meta: SnapshotMetadata) -> str:
    return f"snap-{meta.term:016x}-{meta.index:016x}{SNAPSHOT_SUFFIX}"


@dataclass(frozen=True, slots=True)
class StoredIn:
    """Where a ``StoredSnapshot`` made by a ``FileStorage`` lives (its ``SnapshotFile.origin``):
    that storage takes the file over by its reference instead of copying it."""

    directory: str
    ref: SnapshotRef


def _stored(
    fs: FileSystem, fd: int, *, data_offset: int, directory: str, ref: SnapshotRef
) -> StoredSnapshot:
    file = SnapshotFile(
        partial(fs.pread, fd),
        partial(fs.close, fd),
        offset=data_offset,
        size=ref.size - data_offset,
        origin=StoredIn(directory, ref),
    )
    return StoredSnapshot(ref.metadata, file)


class SnapshotFileWriter:
    """Writes one snapshot file, the data a piece at a time (``write``; ``sync`` when the
    caller wants it on disk so far), then names it (``finish``) or removes it (``abort``).

    Plain file-system calls: one thread at a time. ``naming`` serializes the check that no file
    has the name yet with the rename, across writers of one storage.
    """

    def __init__(
        self, fs: FileSystem, directory: str, metadata: SnapshotMetadata, naming: threading.Lock
    ) -> None:
        self._fs = fs
        self._dir = directory
        self.metadata = metadata
        self._naming = naming
        self.name = snapshot_file_name(metadata)
        # Unique: two writers of one snapshot (a leader's retry) must not share a file.
        stem = self.name.removesuffix(SNAPSHOT_SUFFIX)
        self._tmp = os.path.join(directory, f"{stem}.{next(_tmp_counter)}{SNAPSHOT_SUFFIX}.tmp")
        meta = dumps(encode_snapshot_metadata(metadata))
        remove_if_exists(fs, self._tmp)  # left over from an attempt that failed
        self._fd: int | None = fs.create(self._tmp)
        try:
            fs.pwrite(self._fd, meta, _HEADER_SIZE)
        except BaseException:
            self.abort()
            raise
        self._meta_len = len(meta)
        self._data_start = self._offset = _HEADER_SIZE + len(meta)
        self._crc = zlib.crc32(meta)

    @property
    def written(self) -> int:
        """Data bytes written so far."""
        return self._offset - self._data_start

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None, "the writer is finished"
        self._fs.pwrite(self._fd, data, self._offset)
        self._crc = zlib.crc32(data, self._crc)
        self._offset += len(data)

    def sync(self) -> None:
        assert self._fd is not None, "the writer is finished"
        self._fs.fdatasync(self._fd)

    def finish(self) -> StoredSnapshot | None:
        """Write the header, sync, name the file and sync the directory: the snapshot is
        durable under its name, not yet in force (no WAL record names it). None, and nothing
        kept, if a file of that name exists already (the same snapshot, saved another way)."""
        fd = self._fd
        assert fd is not None, "the writer is finished"
        head = _HEAD.pack(_MAGIC, _VERSION, self._meta_len, self.written)
        crc = zlib.crc32(head, self._crc)
        self._fs.pwrite(fd, head + _CRC.pack(crc), 0)
        self._fs.fdatasync(fd)
        with self._naming:
            if self.name in self._fs.listdir(self._dir):
                self.abort()
                return None
            self._fs.rename(self._tmp, os.path.join(self._dir, self.name))
        self._fd = None
        try:
            self._fs.fsync_dir(self._dir)
        except BaseException:
            self._fs.close(fd)
            raise
        ref = SnapshotRef(self.metadata, self.name, crc, self._offset)
        return _stored(self._fs, fd, data_offset=self._data_start, directory=self._dir, ref=ref)

    def abort(self) -> None:
        """Close and remove the unfinished file (best effort: a leftover ``.tmp`` file is
        removed when the storage opens)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self._fs.close(fd)
        finally:
            remove_if_exists(self._fs, self._tmp)


def write_snapshot_file(
    fs: FileSystem, directory: str, snapshot: Snapshot, naming: threading.Lock | None = None
) -> SnapshotRef:
    """Write ``snapshot`` (its data copied a buffer at a time) atomically and durably; the
    reference the WAL should record. A file of that name kept from before is checked to hold
    this very snapshot."""
    writer = SnapshotFileWriter(fs, directory, snapshot.metadata, naming or threading.Lock())
    try:
        size = snapshot_data_size(snapshot)
        for start in range(0, size, _READ_BYTES):
            writer.write(read_snapshot_data(snapshot, start, _READ_BYTES))
        stored = writer.finish()
    except BaseException:
        writer.abort()
        raise
    if stored is None:  # the same (index, term) was saved before, and never named in the WAL
        stored = read_unnamed_snapshot_file(fs, directory, writer.name)[0]
        if stored != snapshot:
            raise StorageMismatch(
                f"{os.path.join(directory, writer.name)} holds another snapshot at "
                f"{snapshot.metadata.index}"
            )
    origin = stored.file.origin
    assert isinstance(origin, StoredIn)
    stored.file.close()
    return origin.ref


def parse_snapshot_name(name: str) -> tuple[int, int] | None:
    """(index, term) of a snapshot file's name, or None if ``name`` is not one."""
    m = _NAME.match(name)
    return None if m is None else (int(m.group(2), 16), int(m.group(1), 16))


def read_snapshot_file(fs: FileSystem, directory: str, ref: SnapshotRef) -> StoredSnapshot:
    """The snapshot ``ref`` names, checked against its checksum and against ``ref``."""
    path = os.path.join(directory, ref.name)
    try:
        snapshot = _read_verified(fs, directory, ref.name)
    except FileNotFoundError:
        raise StorageMismatch(
            f"snapshot file {path} (index {ref.index}) is named in the WAL but missing"
        ) from None
    origin = snapshot.file.origin
    assert isinstance(origin, StoredIn)
    if origin.ref != ref:
        snapshot.file.close()
        raise StorageMismatch(f"snapshot file {path} is not the one the WAL names")
    return snapshot


def read_unnamed_snapshot_file(
    fs: FileSystem, directory: str, name: str
) -> tuple[StoredSnapshot, SnapshotRef]:
    """A snapshot file no WAL record names, checked on its own: its checksum, and its metadata
    against its name. Returns it with the reference a WAL record naming it would hold."""
    snapshot = _read_verified(fs, directory, name)
    if snapshot_file_name(snapshot.metadata) != name:
        snapshot.file.close()
        path = os.path.join(directory, name)
        raise CorruptSnapshot(f"{path}: its metadata (index, term) does not match its name")
    origin = snapshot.file.origin
    assert isinstance(origin, StoredIn)
    return snapshot, origin.ref


def _read_verified(fs: FileSystem, directory: str, name: str) -> StoredSnapshot:
    """The snapshot in file ``name``, once its own checks passed, over the open file."""
    path = os.path.join(directory, name)
    fd = fs.open(path)
    try:
        meta, data_offset, crc, size = _verify(fs, fd, path)
    except BaseException:
        fs.close(fd)
        raise
    ref = SnapshotRef(meta, name, crc, size)
    return _stored(fs, fd, data_offset=data_offset, directory=directory, ref=ref)


def _verify(fs: FileSystem, fd: int, path: str) -> tuple[SnapshotMetadata, int, int, int]:
    """(metadata, where the data starts, crc, file size), reading the file a buffer at a time."""
    size = fs.size(fd)
    header = fs.pread(fd, _HEADER_SIZE, 0)
    if len(header) < _HEADER_SIZE:
        raise CorruptSnapshot(f"{path}: truncated header")
    magic, version, meta_len, data_len = _HEAD.unpack_from(header)
    if magic != _MAGIC:
        raise CorruptSnapshot(f"{path}: not a snapshot file")
    if version not in (1, _VERSION):
        raise CorruptSnapshot(f"{path}: unsupported version {version}")
    if _HEADER_SIZE + meta_len + data_len != size:
        raise CorruptSnapshot(f"{path}: size {size} does not match its header")
    (crc,) = _CRC.unpack_from(header, _HEAD.size)
    meta_bytes = fs.pread(fd, meta_len, _HEADER_SIZE)
    running = zlib.crc32(header[: _HEAD.size]) if version == 1 else 0
    running = zlib.crc32(meta_bytes, running)
    for start in range(_HEADER_SIZE + meta_len, size, _READ_BYTES):
        running = zlib.crc32(fs.pread(fd, min(_READ_BYTES, size - start), start), running)
    if version == _VERSION:
        running = zlib.crc32(header[: _HEAD.size], running)
    if running != crc:
        raise CorruptSnapshot(f"{path}: checksum mismatch")
    try:
        meta = decode_snapshot_metadata(loads(meta_bytes))
    except CodecError as exc:
        raise CorruptSnapshot(f"{path}: bad metadata: {exc}") from None
    return meta, _HEADER_SIZE + meta_len, crc, size
