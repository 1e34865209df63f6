"""WAL record framing and the CBOR payload of each record type.

A record, little-endian::

    0        4      5          8         12           20                     20 + length
    | magic  | type | reserved | length  | offset     | payload (CBOR) ...   | crc32 |

``offset`` is the record's own position in its segment; ``crc32`` covers everything before it
(header and payload: one pass over contiguous bytes). The magic lets recovery look for later
intact records quickly (``bytes.find``); the offset keeps a record copied *inside* an entry's
data from passing for a real one there.

Payloads (``version`` is ``raftkv._codec.CODEC_VERSION``)::

    HEADER    [version, seq, hard_state | null, snapshot_ref | null]  first record of a segment
    BATCH     [snapshot_ref | null, [entry, ...], hard_state | null]  one ``Storage.save``
    SNAPSHOT  [snapshot_ref]                                          one ``save_snapshot``
    snapshot_ref = [snapshot_metadata, file_name, crc32, size]

A segment header repeats the hard state and snapshot in force when the segment was started, so
older segments can be deleted without losing them.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from .._codec import (
    CodecError,
    decode_entry,
    decode_hard_state,
    decode_snapshot_metadata,
    dumps,
    encode_entry,
    encode_hard_state,
    encode_snapshot_metadata,
    loads,
)
from ..core import Entry, EntryType, HardState, SnapshotMetadata

__all__ = [
    "OVERHEAD",
    "Batch",
    "Frame",
    "RecordType",
    "SegmentHeader",
    "SnapshotRef",
    "decode_batch",
    "decode_hard_state_field",
    "decode_header",
    "decode_snapshot_record",
    "encode_batch",
    "encode_header",
    "encode_snapshot_record",
    "find_frame",
    "frame",
    "leading_frames",
    "read_frame",
]

MAGIC = b"\xd7rkW"
_HEAD = struct.Struct("<4sB3xIQ")  # magic, type, length, offset
_CRC = struct.Struct("<I")
OVERHEAD = _HEAD.size + _CRC.size  # bytes of a record beyond its payload
# A record bigger than this is damage, not data (values are limited far below it).
MAX_PAYLOAD = 1 << 30


class RecordType(enum.IntEnum):
    HEADER = 1
    BATCH = 2
    SNAPSHOT = 3


_TYPE_OF = {int(t): t for t in RecordType}


def frame(rtype: RecordType, payload: bytes, offset: int) -> bytes:
    head = _HEAD.pack(MAGIC, rtype, len(payload), offset)
    return b"".join((head, payload, _CRC.pack(zlib.crc32(payload, zlib.crc32(head)))))


# Not frozen: recovery makes one per record, and a frozen dataclass is 3x slower to create.
@dataclass(slots=True)
class Frame:
    type: RecordType
    offset: int
    end: int
    payload: bytes


def read_frame(buf: bytes, pos: int, view: memoryview | None = None) -> Frame | str:
    """The intact record at ``pos``, or why there is none. ``view``: ``memoryview(buf)``."""
    if len(buf) - pos < OVERHEAD:
        return "truncated record"
    magic, rtype, length, offset = _HEAD.unpack_from(buf, pos)
    if magic != MAGIC:
        return "bad magic"
    if offset != pos:
        return f"record claims offset {offset}"
    kind = _TYPE_OF.get(rtype)
    if kind is None or length > MAX_PAYLOAD:
        return "bad record header"
    body = pos + _HEAD.size
    trailer = body + length
    if trailer + _CRC.size > len(buf):
        return "record runs past the end of the file"
    if view is None:
        view = memoryview(buf)
    if zlib.crc32(view[pos:trailer]) != _CRC.unpack_from(buf, trailer)[0]:
        return "checksum mismatch"
    return Frame(kind, pos, trailer + _CRC.size, buf[body:trailer])


def leading_frames(buf: bytes) -> list[Frame]:
    """The intact records from the start of ``buf`` up to the first bad one (for tools, tests)."""
    out = []
    pos = 0
    view = memoryview(buf)
    while isinstance(rec := read_frame(buf, pos, view), Frame):
        out.append(rec)
        pos = rec.end
    return out


def find_frame(buf: bytes, start: int) -> int:
    """The position of the first intact record at or after ``start``, or -1."""
    view = memoryview(buf)
    pos = buf.find(MAGIC, start)
    while pos != -1:
        if isinstance(read_frame(buf, pos, view), Frame):
            return pos
        pos = buf.find(MAGIC, pos + 1)
    return -1


# -- payloads ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """A WAL's pointer to a snapshot file, with what the file must contain."""

    metadata: SnapshotMetadata
    name: str
    crc: int
    size: int

    @property
    def index(self) -> int:
        return self.metadata.index


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    version: int
    seq: int
    hard_state: HardState | None
    snapshot: SnapshotRef | None


@dataclass(slots=True)
class Batch:
    snapshot: SnapshotRef | None
    entries: list[Entry]
    # Still CBOR-decoded only (``decode_hard_state_field``): recovery decodes just the last one.
    raw_hard_state: Any


def _ref(r: SnapshotRef | None) -> list[Any] | None:
    if r is None:
        return None
    return [encode_snapshot_metadata(r.metadata), r.name, r.crc, r.size]


def _dec_ref(v: Any) -> SnapshotRef | None:
    if v is None:
        return None
    if type(v) is not list or len(v) != 4:
        raise CodecError("bad snapshot reference")
    meta, name, crc, size = v
    if type(name) is not str or type(crc) is not int or type(size) is not int:
        raise CodecError("bad snapshot reference")
    if "/" in name or name.startswith("."):
        raise CodecError(f"bad snapshot file name {name!r:.40}")
    return SnapshotRef(decode_snapshot_metadata(meta), name, crc, size)


def _hs(hs: HardState | None) -> list[Any] | None:
    return None if hs is None else encode_hard_state(hs)


def decode_hard_state_field(v: Any) -> HardState | None:
    if v is None:
        return None
    # The fast path of ``decode_hard_state``, which names the problem when this one fails.
    if type(v) is list and len(v) == 3:
        term, vote, commit = v
        if (
            type(term) is int
            and type(commit) is int
            and term >= 0
            and commit >= 0
            and (vote is None or (type(vote) is int and vote >= 1))
        ):
            return HardState(term, vote, commit)
    return decode_hard_state(v)


def _fields(payload: bytes, n: int) -> list[Any]:
    v = loads(payload)
    if type(v) is not list or len(v) != n:
        raise CodecError(f"expected an array of {n} items")
    return v


def encode_header(h: SegmentHeader) -> bytes:
    return dumps([h.version, h.seq, _hs(h.hard_state), _ref(h.snapshot)])


def decode_header(payload: bytes) -> SegmentHeader:
    version, seq, hs, ref = _fields(payload, 4)
    if type(version) is not int or type(seq) is not int:
        raise CodecError("bad segment header")
    return SegmentHeader(version, seq, decode_hard_state_field(hs), _dec_ref(ref))


def encode_batch(
    snapshot: SnapshotRef | None, entries: Sequence[Entry], hs: HardState | None
) -> bytes:
    return dumps([_ref(snapshot), [encode_entry(e) for e in entries], _hs(hs)])


_ENTRY_TYPES = {int(t): t for t in EntryType}


def _decode_entries(v: Any) -> list[Entry]:
    if type(v) is not list:
        raise CodecError("expected an array of entries")
    # Recovery decodes every entry on disk, so this is one comprehension checking what
    # ``decode_entry`` checks; on failure ``decode_entry`` names the problem.
    try:
        return [
            Entry(t, i, _ENTRY_TYPES[k], d)
            if type(t) is int
            and type(i) is int
            and type(k) is int
            and type(d) is bytes
            and t >= 0
            and i >= 0
            else _malformed()
            for t, i, k, d in v
        ]
    except (TypeError, ValueError, KeyError):
        for item in v:
            decode_entry(item)
        raise CodecError("bad entry") from None


def _malformed() -> NoReturn:
    raise TypeError


def decode_batch(payload: bytes) -> Batch:
    v = loads(payload)
    if type(v) is not list or len(v) != 3:
        raise CodecError("expected an array of 3 items")
    ref, entries, hs = v
    return Batch(None if ref is None else _dec_ref(ref), _decode_entries(entries), hs)


def encode_snapshot_record(ref: SnapshotRef) -> bytes:
    return dumps([_ref(ref)])


def decode_snapshot_record(payload: bytes) -> SnapshotRef:
    (ref,) = _fields(payload, 1)
    decoded = _dec_ref(ref)
    if decoded is None:
        raise CodecError("snapshot record without a snapshot")
    return decoded
