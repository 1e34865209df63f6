"""What travels in the frames of an established peer connection, and its checks on arrival.

Records (each one frame, each a CBOR array starting with its kind)::

    [0, message]                                  any message but InstallSnapshot (_codec form)
    [1, term, src, dst, metadata, total_size]     an InstallSnapshot begins; data follows
    [2, chunk]                                    the next bytes of that snapshot's data

A snapshot is cut into chunks so no frame exceeds the frame limit and messages can be written
between chunks (heartbeats keep flowing while it streams). The sender reads each chunk from the
snapshot's file when it is due (a ``StoredSnapshot`` is never read whole). The receiver takes
one snapshot at a time per connection: with a spool (the node's storage, ``spool_snapshots``)
it writes the chunks into a snapshot file as they come and delivers a snapshot over that file;
without one it reassembles the bytes in memory. Every message must come from the peer the
handshake named and be addressed to us; anything else is a forged frame and closes the
connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from .._codec import (
    CodecError,
    decode_message,
    decode_snapshot_metadata,
    encode_message,
    encode_snapshot_metadata,
    loads,
)
from .._errors import StorageFailed
from .._snapdata import read_snapshot_data, snapshot_data_size
from ..core import InstallSnapshot, Message, Snapshot, SnapshotMetadata
from ._base import Refusal
from ._framing import ProtocolViolation, encode_frame

__all__ = ["RecordDecoder", "SnapshotSpool", "SnapshotWriter", "encode_message_record"]

log = logging.getLogger("raftkv.transport.tcp")

if TYPE_CHECKING:
    from ..storage import SnapshotSink

# Where received snapshots are written: a sink for a snapshot of this metadata.
SnapshotSpool = Callable[[SnapshotMetadata], "SnapshotSink"]

MESSAGE = 0
SNAPSHOT_BEGIN = 1
SNAPSHOT_CHUNK = 2


def encode_message_record(m: Message) -> bytes:
    """One framed message record (not for ``InstallSnapshot``, which streams)."""
    return encode_frame([MESSAGE, encode_message(m)])


class SnapshotWriter:
    """The frames of one ``InstallSnapshot``, handed out a chunk at a time: only the chunk
    being framed is read (from the snapshot's file, for a ``StoredSnapshot``) or copied.
    """

    def __init__(self, message: InstallSnapshot, chunk_size: int) -> None:
        self.message = message
        self._size = snapshot_data_size(message.snapshot)
        self._chunk_size = chunk_size
        self._offset = 0
        self._begun = False

    @property
    def done(self) -> bool:
        return self._begun and self._offset >= self._size

    def next_frames(self) -> bytes:
        """The next frames to write: the header with the first chunk, then one chunk each."""
        out = b""
        if not self._begun:
            m = self.message
            meta = encode_snapshot_metadata(m.snapshot.metadata)
            out = encode_frame([SNAPSHOT_BEGIN, m.term, m.src, m.dst, meta, self._size])
            self._begun = True
        if self._offset < self._size:
            chunk = read_snapshot_data(self.message.snapshot, self._offset, self._chunk_size)
            out += encode_frame([SNAPSHOT_CHUNK, chunk])
            self._offset += len(chunk)
        return out


@dataclass(slots=True)
class _Assembly:
    term: int
    src: int
    dst: int
    metadata: SnapshotMetadata
    total: int
    received: int = 0
    chunks: list[bytes] = field(default_factory=list)  # received, not yet spooled (or joined)
    sink: SnapshotSink | None = None  # where the chunks go, when spooling

    def message(self, snapshot: Snapshot | None = None) -> InstallSnapshot:
        if snapshot is None:
            data = b"".join(self.chunks)
            self.chunks.clear()
            snapshot = Snapshot(self.metadata, data)
        return InstallSnapshot(self.term, self.src, self.dst, snapshot)


def _bad(detail: str) -> ProtocolViolation:
    return ProtocolViolation(Refusal.BAD_FRAME, detail)


def _int(v: Any, lo: int) -> int:
    if type(v) is not int or not lo <= v < 1 << 63:
        raise _bad(f"expected an integer >= {lo}")
    return v


class RecordDecoder:
    """Turns the frames of one connection from ``peer`` to ``node_id`` back into messages.

    With a ``spool``, a snapshot's chunks are written to a sink: after each ``feed``, while
    ``spooling`` says so, ``await drain()`` writes what came and, at the snapshot's end, returns
    its message (over the file). ``close()`` drops a snapshot left unfinished.
    """

    def __init__(
        self,
        peer: int,
        node_id: int,
        max_snapshot_size: int,
        spool: SnapshotSpool | None = None,
    ) -> None:
        self._peer = peer
        self._node_id = node_id
        self._max_snapshot_size = max_snapshot_size
        self._spool = spool
        self._assembly: _Assembly | None = None
        self._complete: _Assembly | None = None  # spooled to its end, to be finished

    @property
    def spooling(self) -> bool:
        """Whether ``drain`` has spooled chunks to write, or a snapshot to finish."""
        a = self._assembly or self._complete
        return a is not None and a.sink is not None and (bool(a.chunks) or a is self._complete)

    async def drain(self) -> Message | None:
        """Write the chunks received to the spool; the snapshot's message once it is complete
        (None if the node has that snapshot already, or its disk failed: then it is dropped)."""
        a = self._complete or self._assembly
        assert a is not None and a.sink is not None
        try:
            while a.chunks:
                await a.sink.write(a.chunks.pop(0))
            if a is not self._complete:
                return None
            self._complete = None
            snapshot = await a.sink.finish()
        except (StorageFailed, trio.ClosedResourceError) as exc:
            log.warning("node %d: the snapshot from %d is dropped: %s", self._node_id, a.src, exc)
            a.sink.abort()
            self._assembly = self._complete = None
            return None
        return None if snapshot is None else a.message(snapshot)

    def close(self) -> None:
        """The connection ended: drop a snapshot being spooled."""
        for a in (self._assembly, self._complete):
            if a is not None and a.sink is not None:
                a.sink.abort()
        self._assembly = self._complete = None

    def feed(self, payload: bytes) -> Message | None:
        """The message this frame completes, if any; ``ProtocolViolation`` if it is bad."""
        try:
            record = loads(payload)
        except CodecError as exc:
            raise _bad(str(exc)) from None
        if type(record) is not list or not record or type(record[0]) is not int:
            raise _bad("a record is an array starting with its kind")
        kind = record[0]
        try:
            if kind == MESSAGE and len(record) == 2:
                return self._message(decode_message(record[1]))
            if kind == SNAPSHOT_BEGIN and len(record) == 6:
                return self._begin(record)
            if kind == SNAPSHOT_CHUNK and len(record) == 2:
                return self._chunk(record[1])
        except CodecError as exc:
            raise _bad(str(exc)) from None
        raise _bad(f"unknown record {kind!r:.20} of {len(record)} items")

    def _check_route(self, src: int, dst: int) -> None:
        if src != self._peer or dst != self._node_id:
            raise ProtocolViolation(
                Refusal.FORGED,
                f"message {src} -> {dst} on the connection {self._peer} -> {self._node_id}",
            )

    def _message(self, m: Message) -> Message:
        if isinstance(m, InstallSnapshot):
            raise _bad("a snapshot must stream in chunks")
        self._check_route(m.src, m.dst)
        return m

    def _begin(self, record: list[Any]) -> Message | None:
        if self._assembly is not None:
            raise _bad("a snapshot began before the previous one ended")
        _, term, src, dst, meta, total = record
        term, src, dst = _int(term, 0), _int(src, 1), _int(dst, 1)
        self._check_route(src, dst)
        metadata = decode_snapshot_metadata(meta)
        total = _int(total, 0)
        if total > self._max_snapshot_size:
            raise ProtocolViolation(
                Refusal.OVERSIZED_FRAME, f"snapshot of {total} bytes > {self._max_snapshot_size}"
            )
        assembly = _Assembly(term, src, dst, metadata, total)
        if total == 0:
            return assembly.message()
        if self._spool is not None:
            try:
                assembly.sink = self._spool(metadata)
            except (StorageFailed, trio.ClosedResourceError) as exc:  # then in memory
                log.warning("node %d: cannot spool a snapshot to disk: %s", self._node_id, exc)
        self._assembly = assembly
        return None

    def _chunk(self, chunk: Any) -> Message | None:
        a = self._assembly
        if a is None:
            raise _bad("a snapshot chunk outside a snapshot")
        if type(chunk) is not bytes or not chunk:
            raise _bad("a snapshot chunk is non-empty bytes")
        if a.received + len(chunk) > a.total:
            raise _bad("snapshot data longer than announced")
        a.chunks.append(chunk)
        a.received += len(chunk)
        if a.received < a.total:
            return None
        self._assembly = None
        if a.sink is not None:
            self._complete = a  # ``drain`` writes the rest and finishes it
            return None
        return a.message()
