"""The key-value store's snapshot format: a CBOR sequence (RFC 8742), written and read one
record at a time::

    ["raftkv-kv", 1, revision, applied_index, count]        header
    [key, value, create_revision, mod_revision, version]    count records, in key order

Reading is all or nothing and checks every record (types, key order, revision bounds):
``CorruptSnapshot`` names what is wrong.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

import cbor2

from .._errors import CorruptSnapshot
from ._limits import MAX_INT
from ._sortedkeys import SortedKeys

__all__ = ["Record", "SnapshotState", "read_snapshot", "snapshot_chunks"]

SNAPSHOT_MAGIC: Final = "raftkv-kv"
SNAPSHOT_VERSION: Final = 1

# How the store keeps a key's KeyValue: (value, create_revision, mod_revision, version).
Record = tuple[bytes, int, int, int]


@dataclass(frozen=True, slots=True)
class SnapshotState:
    """A snapshot read back: the store's whole state."""

    revision: int
    applied_index: int
    keys: SortedKeys
    data: dict[bytes, Record]


def snapshot_chunks(
    revision: int,
    applied_index: int,
    keys: SortedKeys,
    data: dict[bytes, Record],
    chunk_bytes: int,
) -> Iterator[bytes]:
    """The snapshot of ``keys``/``data`` as chunks of about ``chunk_bytes`` each, serialized
    lazily as they are consumed (the caller hands over views that no later write changes)."""
    parts = [cbor2.dumps([SNAPSHOT_MAGIC, SNAPSHOT_VERSION, revision, applied_index, len(keys)])]
    size = len(parts[0])
    for key in keys:
        record = cbor2.dumps([key, *data[key]])
        parts.append(record)
        size += len(record)
        if size >= chunk_bytes:
            yield b"".join(parts)
            parts.clear()
            size = 0
    if parts:
        yield b"".join(parts)


def read_snapshot(stream: IO[bytes]) -> SnapshotState:
    """The state in a snapshot read from a binary stream, one record at a time;
    ``CorruptSnapshot`` if it is not exactly a well-formed snapshot."""
    if not isinstance(stream, io.BufferedIOBase):
        # cbor2 takes a short read for the end of the data; a buffered reader never returns one.
        stream = io.BufferedReader(_RawReader(stream))
    decoder = cbor2.CBORDecoder(stream, max_depth=4)
    try:
        revision, applied_index, count = _read_header(decoder.decode())
        data: dict[bytes, Record] = {}
        keys: list[bytes] = []
        for _ in range(count):
            key, record = _read_record(decoder.decode(), revision)
            if keys and key <= keys[-1]:
                raise CorruptSnapshot("snapshot keys are not in strictly ascending order")
            keys.append(key)
            data[key] = record
        try:
            decoder.decode()
        except cbor2.CBORDecodeEOF:
            pass
        else:
            raise CorruptSnapshot("trailing data after the last snapshot record")
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise CorruptSnapshot(f"undecodable snapshot: {exc}") from None
    return SnapshotState(revision, applied_index, SortedKeys.from_sorted(keys), data)


class _RawReader(io.RawIOBase):
    """Any readable binary stream as a raw stream, for ``io.BufferedReader``."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _snapshot_int(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v <= MAX_INT:
        raise CorruptSnapshot(f"bad {what} in snapshot: {v!r:.40}")
    return v


def _read_header(v: Any) -> tuple[int, int, int]:
    if type(v) is not list or len(v) != 5 or v[0] != SNAPSHOT_MAGIC:
        raise CorruptSnapshot("not a raftkv key-value snapshot")
    if v[1] != SNAPSHOT_VERSION:
        raise CorruptSnapshot(f"unsupported snapshot version {v[1]!r:.20}")
    return (
        _snapshot_int(v[2], "revision"),
        _snapshot_int(v[3], "applied index"),
        _snapshot_int(v[4], "record count"),
    )


def _read_record(v: Any, revision: int) -> tuple[bytes, Record]:
    if type(v) is not list or len(v) != 5:
        raise CorruptSnapshot("a snapshot record must be an array of 5 items")
    key, value, create_rev, mod_rev, version = v
    if type(key) is not bytes or not key or type(value) is not bytes:
        raise CorruptSnapshot("a snapshot record needs a non-empty key and a value, as bytes")
    create_rev = _snapshot_int(create_rev, "create_revision")
    mod_rev = _snapshot_int(mod_rev, "mod_revision")
    version = _snapshot_int(version, "version")
    if not (1 <= create_rev <= mod_rev <= revision and 1 <= version <= mod_rev - create_rev + 1):
        raise CorruptSnapshot(f"inconsistent revisions for key {key!r:.40} in snapshot")
    return key, (value, create_rev, mod_rev, version)
