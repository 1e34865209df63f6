"""Snapshot files: one per snapshot, complete and durable before the WAL names it.

Layout, little-endian::

    0        8         12         16         24      28
    | magic  | version | meta_len | data_len | crc32 | metadata (CBOR) | data

``crc32`` covers bytes 0..24, the metadata and the data. The name is
``snap-<term:016x>-<index:016x>.snap``. Writing goes to ``<name>.tmp`` (write, fdatasync), which
is renamed to ``<name>``, and the directory is fsynced: the name only ever appears over complete,
durable bytes, and only then is the WAL record naming it written.
"""

from __future__ import annotations

import os
import re
import struct
import zlib

from .._codec import CodecError, decode_snapshot_metadata, dumps, encode_snapshot_metadata, loads
from .._errors import CorruptSnapshot, StorageMismatch
from ..core import Snapshot, SnapshotMetadata
from ._fs import FileSystem, remove_if_exists
from ._records import SnapshotRef

__all__ = [
    "SNAPSHOT_SUFFIX",
    "parse_snapshot_name",
    "read_snapshot_file",
    "read_unnamed_snapshot_file",
    "snapshot_file_name",
    "write_snapshot_file",
]

SNAPSHOT_SUFFIX = ".snap"
_MAGIC = b"\xd7rkSNAP\x00"
_VERSION = 1
_HEAD = struct.Struct("<8sIIQ")
_CRC = struct.Struct("<I")
_HEADER_SIZE = _HEAD.size + _CRC.size
_NAME = re.compile(r"^snap-([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


def snapshot_file_name(meta: SnapshotMetadata) -> str:
    return f"snap-{meta.term:016x}-{meta.index:016x}{SNAPSHOT_SUFFIX}"


def write_snapshot_file(fs: FileSystem, directory: str, snapshot: Snapshot) -> SnapshotRef:
    """Write ``snapshot`` atomically and durably; the reference the WAL should record."""
    name = snapshot_file_name(snapshot.metadata)
    meta = dumps(encode_snapshot_metadata(snapshot.metadata))
    head = _HEAD.pack(_MAGIC, _VERSION, len(meta), len(snapshot.data))
    crc = zlib.crc32(snapshot.data, zlib.crc32(meta, zlib.crc32(head)))
    prefix = head + _CRC.pack(crc) + meta
    path = os.path.join(directory, name)
    tmp = path + ".tmp"
    remove_if_exists(fs, tmp)  # left over from an attempt that failed
    fd = fs.create(tmp)
    try:
        fs.pwrite(fd, prefix, 0)
        fs.pwrite(fd, snapshot.data, len(prefix))
        fs.fdatasync(fd)
    finally:
        fs.close(fd)
    fs.rename(tmp, path)
    fs.fsync_dir(directory)
    return SnapshotRef(snapshot.metadata, name, crc, len(prefix) + len(snapshot.data))


def parse_snapshot_name(name: str) -> tuple[int, int] | None:
    """(index, term) of a snapshot file's name, or None if ``name`` is not one."""
    m = _NAME.match(name)
    return None if m is None else (int(m.group(2), 16), int(m.group(1), 16))


def read_snapshot_file(fs: FileSystem, directory: str, ref: SnapshotRef) -> Snapshot:
    """The snapshot ``ref`` names, checked against its checksum and against ``ref``."""
    path = os.path.join(directory, ref.name)
    try:
        snapshot, crc, size = _read_verified(fs, path)
    except FileNotFoundError:
        raise StorageMismatch(
            f"snapshot file {path} (index {ref.index}) is named in the WAL but missing"
        ) from None
    if crc != ref.crc or size != ref.size or snapshot.metadata != ref.metadata:
        raise StorageMismatch(f"snapshot file {path} is not the one the WAL names")
    return snapshot


def read_unnamed_snapshot_file(
    fs: FileSystem, directory: str, name: str
) -> tuple[Snapshot, SnapshotRef]:
    """A snapshot file no WAL record names, checked on its own: its checksum, and its metadata
    against its name. Returns it with the reference a WAL record naming it would hold."""
    path = os.path.join(directory, name)
    snapshot, crc, size = _read_verified(fs, path)
    if snapshot_file_name(snapshot.metadata) != name:
        raise CorruptSnapshot(f"{path}: its metadata (index, term) does not match its name")
    return snapshot, SnapshotRef(snapshot.metadata, name, crc, size)


def _read_verified(fs: FileSystem, path: str) -> tuple[Snapshot, int, int]:
    """The snapshot in ``path`` with its crc and size, once its own checks passed."""
    buf = fs.read_file(path)
    if len(buf) < _HEADER_SIZE:
        raise CorruptSnapshot(f"{path}: truncated header")
    magic, version, meta_len, data_len = _HEAD.unpack_from(buf)
    if magic != _MAGIC:
        raise CorruptSnapshot(f"{path}: not a snapshot file")
    if version != _VERSION:
        raise CorruptSnapshot(f"{path}: unsupported version {version}")
    if _HEADER_SIZE + meta_len + data_len != len(buf):
        raise CorruptSnapshot(f"{path}: size {len(buf)} does not match its header")
    (crc,) = _CRC.unpack_from(buf, _HEAD.size)
    view = memoryview(buf)
    if zlib.crc32(view[_HEADER_SIZE:], zlib.crc32(view[: _HEAD.size])) != crc:
        raise CorruptSnapshot(f"{path}: checksum mismatch")
    try:
        meta = decode_snapshot_metadata(loads(buf[_HEADER_SIZE : _HEADER_SIZE + meta_len]))
    except CodecError as exc:
        raise CorruptSnapshot(f"{path}: bad metadata: {exc}") from None
    return Snapshot(meta, buf[_HEADER_SIZE + meta_len :]), crc, len(buf)
