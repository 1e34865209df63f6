"""Backups: a consistent snapshot of the store, as a file, and a new cluster built from one.

The file (what ``GET /v1/snapshot`` streams and ``raftkv snapshot save`` writes)::

    b"RAFTKVBK" | version (u32) | the store's snapshot (a CBOR sequence) | trailer

    trailer: b"RKVEND" | body length (u64) | SHA-256 of the body (32 bytes)

The body is the key-value store's own snapshot format (``raftkv.kv``: every key with its
retained history, the leases), so its first record tells the revision and the index it was
taken at. The checksum comes last because the member streams the body as it serializes it.
``restore`` seeds the data directories of a *new* cluster from it (as ``etcdutl snapshot
restore``): same keys, revisions and leases; new members, starting at log index 1.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import raftkv
from raftkv.kv import KVStateMachine
from raftkv.storage import open_file_storage

from ._datadir import Meta, write_meta

__all__ = [
    "BackupError",
    "BackupInfo",
    "backup_chunks",
    "read_backup",
    "restore_backup",
]

MAGIC = b"RAFTKVBK"
TRAILER_MAGIC = b"RKVEND"
VERSION = 1
_HEAD = struct.Struct(">8sI")
_TRAILER = struct.Struct(">6sQ32s")


class BackupError(ValueError):
    """A file that is not a whole, intact raftkv backup; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    revision: int
    compact_revision: int
    index: int  # the log index the snapshot was taken at
    keys: int
    leases: int
    size: int  # bytes of the store's snapshot
    sha256: str


def backup_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The backup file of a store snapshot given as ``chunks``, as it is written."""
    digest = hashlib.sha256()
    size = 0
    yield _HEAD.pack(MAGIC, VERSION)
    for chunk in chunks:
        if not chunk:
            continue  # a step of the store's, nothing to write
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    yield _TRAILER.pack(TRAILER_MAGIC, size, digest.digest())


def _body(file: BinaryIO) -> tuple[int, int, bytes]:
    """(offset, length, sha256) of the body, the frame checked."""
    file.seek(0, os.SEEK_END)
    total = file.tell()
    if total < _HEAD.size + _TRAILER.size:
        raise BackupError(f"{total} bytes: too short to be a raftkv backup")
    file.seek(0)
    magic, version = _HEAD.unpack(file.read(_HEAD.size))
    if magic != MAGIC:
        raise BackupError("not a raftkv backup (no RAFTKVBK header)")
    if version != VERSION:
        raise BackupError(f"backup version {version} is not one this raftkv reads ({VERSION})")
    file.seek(total - _TRAILER.size)
    end, length, digest = _TRAILER.unpack(file.read(_TRAILER.size))
    if end != TRAILER_MAGIC or length != total - _HEAD.size - _TRAILER.size:
        raise BackupError("the backup is truncated (its trailer is missing or wrong)")
    return _HEAD.size, length, digest


def read_backup(path: Path) -> tuple[BackupInfo, KVStateMachine]:
    """Check the backup at ``path`` (framing, checksum, every record) and load it."""
    with path.open("rb") as file:
        offset, length, digest = _body(file)
        file.seek(offset)
        body = file.read(length)
    actual = hashlib.sha256(body).digest()
    if actual != digest:
        raise BackupError(
            f"checksum mismatch: the file says {digest.hex()}, the body is {actual.hex()}"
        )
    store = KVStateMachine()
    try:
        store.restore_from(io.BytesIO(body))
    except raftkv.CorruptSnapshot as exc:
        raise BackupError(f"the snapshot inside is damaged: {exc}") from None
    info = BackupInfo(
        revision=store.revision,
        compact_revision=store.compact_revision,
        index=store.applied_index,
        keys=len(store),
        leases=len(store.lease_ids()),
        size=length,
        sha256=digest.hex(),
    )
    return info, store


async def restore_backup(
    path: Path, data_dir: Path, *, node_id: int, cluster_id: str, peers: dict[int, str]
) -> BackupInfo:
    """Make ``data_dir`` (empty or missing) the data directory of member ``node_id`` of a new
    cluster of ``peers``, named ``cluster_id``, whose store starts as the backup's. Do it for
    every member, from the same file; then start each with ``raftkvd`` (its data wins)."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise BackupError(f"{data_dir} is not empty: restore only into a new data directory")
    info, store = read_backup(path)
    store.applied_index = 1  # the new cluster's log starts after its first index
    data_dir.mkdir(parents=True, exist_ok=True)
    write_meta(data_dir, Meta(node_id, cluster_id))
    async with open_file_storage(data_dir / "raft") as storage:
        await raftkv.seed_storage(storage, peers=peers, state=store.snapshot())
    return info
