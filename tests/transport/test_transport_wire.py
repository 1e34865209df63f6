"""Frames, handshake and records in isolation, including arbitrary hostile bytes."""

from __future__ import annotations

from contextlib import suppress

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from raftkv._codec import encode_message
from raftkv.core import ConfState, Heartbeat, InstallSnapshot, Snapshot, SnapshotMetadata
from raftkv.transport import Refusal
from raftkv.transport._framing import FrameReader, ProtocolViolation, encode_frame, frame
from raftkv.transport._handshake import (
    HandshakeRefused,
    Hello,
    check_reply,
    decode_hello,
    encode_accept,
    encode_hello,
    encode_refusal,
    judge,
)
from raftkv.transport._records import RecordDecoder, SnapshotWriter, encode_message_record


def payload_of(framed: bytes) -> bytes:
    return framed[4:]


# -- frames ---------------------------------------------------------------------------------------


class Pieces(trio.abc.ReceiveStream):
    """A stream that yields ``data`` ``piece`` bytes at a time, then EOF."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._data = data
        self._piece = piece

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        chunk, self._data = self._data[: self._piece], self._data[self._piece :]
        return chunk

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def read_all(data: bytes, max_frame_size: int, piece: int) -> list[bytes]:
    """Frames read from ``data`` delivered ``piece`` bytes at a time, until EOF."""
    reader = FrameReader(Pieces(data, piece), max_frame_size)
    out = []
    while (f := await reader.read()) is not None:
        out.append(f)
    return out


@pytest.mark.parametrize("piece", [1, 3, 1000])
async def test_frames_survive_any_split(piece: int) -> None:
    payloads = [b"", b"a", b"x" * 300]
    data = b"".join(frame(p) for p in payloads)
    assert await read_all(data, 300, piece) == payloads


async def test_oversized_frame_is_refused_before_reading_it() -> None:
    with pytest.raises(ProtocolViolation) as err:
        await read_all(frame(b"x" * 301), 300, 4)
    assert err.value.reason is Refusal.OVERSIZED_FRAME


async def test_eof_inside_a_frame_is_a_broken_stream() -> None:
    with pytest.raises(trio.BrokenResourceError):
        await read_all(frame(b"abc")[:-1], 300, 2)


# -- handshake ------------------------------------------------------------------------------------


def test_hello_round_trip_and_judgement() -> None:
    hello = decode_hello(payload_of(encode_hello(Hello("c", 2, 1))))
    assert hello == Hello("c", 2, 1)
    kw = {"cluster_id": "c", "node_id": 1, "members": {2, 3}, "removed": {4}}
    assert judge(hello, **kw) is None  # type: ignore[arg-type]
    cases = {
        Hello("other", 2, 1): Refusal.WRONG_CLUSTER,
        Hello("c", 2, 9): Refusal.WRONG_RECEIVER,
        Hello("c", 4, 1): Refusal.REMOVED,
        Hello("c", 5, 1): Refusal.UNKNOWN_SENDER,
        Hello("c", 1, 1): Refusal.UNKNOWN_SENDER,  # ourselves
    }
    for h, reason in cases.items():
        refusal = judge(h, **kw)  # type: ignore[arg-type]
        assert refusal is not None and refusal.reason is reason


def test_replies() -> None:
    check_reply(payload_of(encode_accept()))
    with pytest.raises(HandshakeRefused) as err:
        check_reply(payload_of(encode_refusal(Refusal.REMOVED, "bye")))
    assert (err.value.reason, err.value.detail) == ("removed", "bye")


@given(st.binary(max_size=200))
def test_hello_decoding_rejects_garbage_cleanly(data: bytes) -> None:
    try:
        decode_hello(data)
    except ProtocolViolation as exc:
        assert exc.reason in (Refusal.BAD_HANDSHAKE, Refusal.INCOMPATIBLE)


@given(st.binary(max_size=200))
def test_reply_checking_rejects_garbage_cleanly(data: bytes) -> None:
    with suppress(ProtocolViolation, HandshakeRefused):
        check_reply(data)


# -- records --------------------------------------------------------------------------------------


def snapshot(data: bytes) -> InstallSnapshot:
    meta = SnapshotMetadata(7, 2, ConfState((1, 2)))
    return InstallSnapshot(2, 2, 1, Snapshot(meta, data))


@given(data=st.binary(max_size=5000), chunk=st.integers(1, 700), beats=st.integers(0, 3))
def test_snapshots_reassemble_between_messages(data: bytes, chunk: int, beats: int) -> None:
    writer = SnapshotWriter(snapshot(data), chunk)
    decoder = RecordDecoder(peer=2, node_id=1, max_snapshot_size=10_000)
    got = []
    rounds = 0
    while not writer.done:
        rounds += 1
        wire = writer.next_frames() + b"".join(
            encode_message_record(Heartbeat(2, 2, 1, i)) for i in range(beats)
        )
        while wire:
            size = int.from_bytes(wire[:4], "big")
            message = decoder.feed(wire[4 : 4 + size])
            wire = wire[4 + size :]
            if message is not None:
                got.append(message)
    assert [m for m in got if isinstance(m, InstallSnapshot)] == [snapshot(data)]
    assert len(got) == 1 + beats * rounds
    assert rounds == max(1, -(-len(data) // chunk))


@given(st.binary(max_size=300))
def test_record_decoding_rejects_garbage_cleanly(data: bytes) -> None:
    decoder = RecordDecoder(peer=2, node_id=1, max_snapshot_size=1000)
    try:
        message = decoder.feed(data)
    except ProtocolViolation:
        return
    # Whatever got through is a well-formed message on the right route.
    if message is not None:
        assert (message.src, message.dst) == (2, 1)


def test_records_are_checked() -> None:
    def reason(*records: object) -> Refusal:
        decoder = RecordDecoder(peer=2, node_id=1, max_snapshot_size=10)
        with pytest.raises(ProtocolViolation) as err:
            for r in records:
                decoder.feed(payload_of(encode_frame(r)))
        return err.value.reason

    meta = [7, 2, [[1, 2], []]]
    assert reason([0, encode_message(Heartbeat(1, 3, 1, 0))]) is Refusal.FORGED
    assert reason([0, encode_message(Heartbeat(1, 2, 3, 0))]) is Refusal.FORGED
    assert reason([1, 1, 3, 1, meta, 5]) is Refusal.FORGED
    assert reason([1, 1, 2, 1, meta, 11]) is Refusal.OVERSIZED_FRAME
    assert reason([1, 1, 2, 1, meta, 2], [2, b"abc"]) is Refusal.BAD_FRAME  # longer than said
    assert reason([1, 1, 2, 1, meta, 5], [1, 1, 2, 1, meta, 5]) is Refusal.BAD_FRAME
    assert reason([2, b"x"]) is Refusal.BAD_FRAME
    assert reason([2, b""]) is Refusal.BAD_FRAME
    assert reason([True, 1]) is Refusal.BAD_FRAME
    inline = encode_message(snapshot(b"x"))
    assert reason([0, inline]) is Refusal.BAD_FRAME  # snapshots must stream
