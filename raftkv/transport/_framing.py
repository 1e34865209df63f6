"""Length-prefixed frames on a byte stream, and the error that refuses a peer.

A frame is a 4-byte big-endian payload length followed by the payload, one CBOR item. The reader
checks the length before it buffers anything, so a peer cannot make us allocate more than
``max_frame_size`` (plus one read) by lying about it.
"""

from __future__ import annotations

import struct
from typing import Any

import trio

from .._codec import dumps
from .._errors import TransportError
from ._base import Refusal

__all__ = ["FrameReader", "ProtocolViolation", "encode_frame", "frame"]

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size


class ProtocolViolation(TransportError):
    """A peer broke the protocol; its connection is closed and counted under ``reason``."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def encode_frame(obj: Any) -> bytes:
    """``obj`` CBOR-encoded and framed."""
    return frame(dumps(obj))


class FrameReader:
    """Reads frames from ``stream``; ``max_frame_size`` may change between reads."""

    def __init__(self, stream: trio.abc.ReceiveStream, max_frame_size: int) -> None:
        self._stream = stream
        self._buffer = bytearray()
        # Invariant: bytes before _pos are consumed. They are released only when more must be
        # read, so a burst of small frames is not shifted down once per frame.
        self._pos = 0
        self.max_frame_size = max_frame_size

    async def read(self) -> bytes | None:
        """The next payload, or ``None`` if the peer closed cleanly between frames.

        Raises ``ProtocolViolation`` for an oversized frame and ``trio.BrokenResourceError`` if
        the peer closed in the middle of one (a crash, not a protocol breach).
        """
        if not await self._fill(HEADER_SIZE):
            return None
        (size,) = _HEADER.unpack_from(self._buffer, self._pos)
        if size > self.max_frame_size:
            raise ProtocolViolation(
                Refusal.OVERSIZED_FRAME, f"frame of {size} bytes > {self.max_frame_size}"
            )
        await self._fill(HEADER_SIZE + size)
        start = self._pos + HEADER_SIZE
        self._pos = start + size
        return bytes(self._buffer[start : self._pos])

    async def _fill(self, n: int) -> bool:
        """Have ``n`` unconsumed bytes; False on EOF with none at all (a clean close)."""
        while len(self._buffer) - self._pos < n:
            del self._buffer[: self._pos]
            self._pos = 0
            data = await self._stream.receive_some()
            if not data:
                if not self._buffer:
                    return False
                raise trio.BrokenResourceError("connection closed in the middle of a frame")
            self._buffer += data
        return True
