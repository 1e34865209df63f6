"""The outbound half of the TCP transport: one ``PeerLink`` (queue, connection, task) per peer.

A link's task waits for work, dials (TCP from our own host, then TLS, then the handshake) and
writes what is queued, many messages per write plus at most one snapshot chunk, so a long snapshot
never holds heartbeats back. While a plain TCP connection is idle, ``push`` writes a message
itself, without a task switch (the socket is non-blocking; what it does not take at once is left
to the task): a lone write's round trip is mostly such hops. A second task watches the
connection for the peer closing it or saying we were removed. When a connection fails, what it
carried is lost and reported (``Unreachable``, ``SnapshotStatus(ok=False)``); the link then backs
off (capped exponential with jitter), and while it backs off new messages are dropped at once
instead of queuing for a dead peer. The connection stays open between bursts.
"""

from __future__ import annotations

import enum
import logging
import os
import random
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from .._errors import TransportError
from ..core import InstallSnapshot, Message
from ._base import Refusal, SnapshotStatus, Unreachable
from ._events import EventSink
from ._framing import HEADER_SIZE, FrameReader
from ._handshake import MAX_HANDSHAKE_FRAME, HandshakeRefused, Hello, check_reply, encode_hello
from ._options import TcpOptions
from ._records import SnapshotWriter, encode_message_record
from ._stats import Counters
from ._url import parse_peer_url

__all__ = ["LinkContext", "PeerLink"]

log = logging.getLogger("raftkv.transport.tcp")

# How a broken or refused connection shows itself; anything else is a bug and propagates.
_CONNECTION_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, TransportError)


class _State(enum.Enum):
    IDLE = "idle"  # no connection; dials when work arrives
    CONNECTING = "connecting"
    UP = "up"
    BACKOFF = "backoff"  # after a failure: messages are dropped until the next attempt


@dataclass(frozen=True, slots=True)
class LinkContext:
    """What all links of one transport share."""

    node_id: int
    cluster_id: str
    options: TcpOptions
    ssl_context: ssl.SSLContext | None
    local_address: str | None
    sink: EventSink
    counters: Counters
    rng: random.Random
    told_removed: Callable[[int], None]


class PeerLink:
    def __init__(self, ctx: LinkContext, peer_id: int, url: str) -> None:
        self.peer_id = peer_id
        self.url = url
        self._host, self._port = parse_peer_url(url)
        self._ctx = ctx
        self._queue: deque[Message] = deque()
        self._snapshots: deque[InstallSnapshot] = deque()
        self._snapshot: SnapshotWriter | None = None  # the one being written
        self._writing = 0  # messages in the write under way, lost if it fails
        # While a plain TCP connection is up: a second handle on its socket for push() to write
        # to directly, and the tail of a message it wrote only in part (the task sends it).
        self._direct: socket.socket | None = None
        self._tail = b""
        self._state = _State.IDLE
        self._wake = trio.Event()
        # Created here, not in run(), so that close() works before the task first runs.
        self._scope = trio.CancelScope()

    @property
    def connected(self) -> bool:
        return self._state is _State.UP

    def push(self, m: Message) -> None:
        """Queue ``m``; drop it (and report) if the peer is down or backlogged. Never blocks."""
        if self._state is _State.BACKOFF:
            self._drop(m)
        elif isinstance(m, InstallSnapshot):
            # The leader sends one snapshot per follower at a time; a second is a retry.
            if self._snapshots:
                self._drop(m)
            else:
                self._snapshots.append(m)
                self._wake.set()
        elif len(self._queue) >= self._ctx.options.queue_size:
            self._drop(m)
        elif not self._write_now(m):
            self._queue.append(m)
            self._wake.set()

    def _write_now(self, m: Message) -> bool:
        """Write ``m`` straight to an idle connection; False if it must queue instead."""
        sock = self._direct
        if sock is None or self._queue or self._writing or self._tail or self._snapshot:
            return False
        frame = self._frame(m)
        if frame is None:
            return True  # dropped
        try:
            sent = sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            return False  # the task's own write meets the error and fails the link
        counters = self._ctx.counters
        counters.writes += 1
        counters.messages_sent += 1
        if sent < len(frame):
            self._tail = frame[sent:]
            self._wake.set()
        return True

    def close(self) -> None:
        self._scope.cancel()

    # -- the link's task -------------------------------------------------------------------

    async def run(self) -> None:
        with self._scope:
            try:
                await self._loop()
            finally:
                self._fail_pending(closing=True)

    async def _loop(self) -> None:
        failures = 0
        me, peer = self._ctx.node_id, self.peer_id
        while True:
            await self._wait_for_work()
            self._state = _State.CONNECTING
            try:
                stream, reader = await self._dial()
            except HandshakeRefused as exc:
                log.warning("node %d: %s refused us: %s", me, self.url, exc)
                if exc.reason == Refusal.REMOVED:
                    self._ctx.told_removed(peer)
                failures += 1
            except (*_CONNECTION_ERRORS, trio.TooSlowError) as exc:
                # Said once per outage at INFO; the retries every backoff only at DEBUG.
                level = logging.INFO if failures == 0 else logging.DEBUG
                log.log(level, "node %d: cannot reach %d at %s: %r", me, peer, self.url, exc)
                failures += 1
            else:
                failures = 0
                self._state = _State.UP
                log.info("node %d: connected to %d at %s", me, peer, self.url)
                try:
                    await self._serve(stream, reader)
                finally:
                    await trio.aclose_forcefully(stream)
                log.info("node %d: lost the connection to %d", me, peer)
            self._fail_pending()
            self._state = _State.BACKOFF
            await trio.sleep(self._backoff(failures))
            self._state = _State.IDLE

    def _backoff(self, failures: int) -> float:
        opts = self._ctx.options
        delay = min(opts.backoff_max, opts.backoff_initial * 2.0 ** min(failures, 32))
        # Jitter keeps the nodes of a restarted cluster from dialing in lockstep.
        return delay * self._ctx.rng.uniform(0.5, 1.0)

    async def _wait_for_work(self) -> None:
        while not (self._queue or self._snapshots or self._snapshot or self._tail):
            self._wake = trio.Event()
            await self._wake.wait()

    async def _dial(self) -> tuple[trio.abc.Stream, FrameReader]:
        ctx, opts = self._ctx, self._ctx.options
        with trio.fail_after(opts.connect_timeout):
            tcp = await trio.open_tcp_stream(
                self._host, self._port, local_address=ctx.local_address
            )
        stream: trio.abc.Stream = tcp
        ok = False
        try:
            with trio.fail_after(opts.handshake_timeout):
                if ctx.ssl_context is not None:
                    stream = trio.SSLStream(tcp, ctx.ssl_context, server_hostname=self._host)
                    await stream.do_handshake()
                reader = FrameReader(stream, MAX_HANDSHAKE_FRAME)
                await stream.send_all(
                    encode_hello(Hello(ctx.cluster_id, ctx.node_id, self.peer_id))
                )
                reply = await reader.read()
                if reply is None:
                    raise trio.BrokenResourceError("peer closed during the handshake")
                check_reply(reply)
            ok = True
            return stream, reader
        finally:
            if not ok:
                await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.abc.Stream, reader: FrameReader) -> None:
        """Write until the connection fails or the peer closes it."""
        if isinstance(stream, trio.SocketStream):
            self._direct = socket.socket(fileno=os.dup(stream.socket.fileno()))
            self._direct.setblocking(False)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, reader, nursery.cancel_scope)
                try:
                    await self._write_loop(stream)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    log.debug("node %d: lost %d: %r", self._ctx.node_id, self.peer_id, exc)
                nursery.cancel_scope.cancel()
        finally:
            if self._direct is not None:
                self._direct.close()
                self._direct = None

    async def _watch(self, reader: FrameReader, scope: trio.CancelScope) -> None:
        """The listener only speaks again to refuse us; any frame, EOF or error ends the link."""
        try:
            frame = await reader.read()
            if frame is not None:
                check_reply(frame)
        except HandshakeRefused as exc:
            log.warning(
                "node %d: %d closed our connection: %s", self._ctx.node_id, self.peer_id, exc
            )
            if exc.reason == Refusal.REMOVED:
                self._ctx.told_removed(self.peer_id)
        except _CONNECTION_ERRORS as exc:
            log.debug("node %d: connection to %d: %r", self._ctx.node_id, self.peer_id, exc)
        scope.cancel()

    async def _write_loop(self, stream: trio.abc.Stream) -> None:
        counters = self._ctx.counters
        while True:
            await self._wait_for_work()
            if self._tail:
                # Finish the message push() began: it was counted then.
                tail, self._tail = self._tail, b""
                self._writing = 1
                await stream.send_all(tail)
                self._writing = 0
                continue
            data, count = self._next_write()
            if not data:
                continue
            # Counted before the write so that a peer that already got them sees them counted;
            # a failed write takes them back (_fail_pending).
            counters.writes += 1
            counters.messages_sent += count
            self._writing = count
            await stream.send_all(data)
            self._writing = 0
            snapshot = self._snapshot
            if snapshot is not None and snapshot.done:
                self._snapshot = None
                counters.snapshots_sent += 1
                counters.messages_sent += 1
                self._ctx.sink.report(SnapshotStatus(self.peer_id, True))

    def _next_write(self) -> tuple[bytes, int]:
        """The bytes of the next write and how many whole messages they carry."""
        opts = self._ctx.options
        frames: list[bytes] = []
        size = count = 0
        while self._queue and size < opts.batch_bytes:
            f = self._frame(self._queue.popleft())
            if f is None:
                continue
            frames.append(f)
            size += len(f)
            count += 1
        if self._snapshot is None and self._snapshots:
            self._snapshot = SnapshotWriter(self._snapshots.popleft(), opts.snapshot_chunk_size)
        if self._snapshot is not None:
            frames.append(self._snapshot.next_frames())
        return b"".join(frames), count

    def _frame(self, m: Message) -> bytes | None:
        """``m`` as a frame; None if it is over the frame size limit (then dropped, reported)."""
        f = encode_message_record(m)
        if len(f) - HEADER_SIZE > self._ctx.options.max_frame_size:
            log.warning("node %d: dropping a %d-byte message to %d", m.src, len(f), m.dst)
            self._drop(m)
            return None
        return f

    # -- losses ----------------------------------------------------------------------------

    def _drop(self, m: Message) -> None:
        self._ctx.counters.messages_dropped += 1
        self._ctx.sink.report(Unreachable(self.peer_id))
        if isinstance(m, InstallSnapshot):
            self._snapshot_failed()

    def _snapshot_failed(self) -> None:
        self._ctx.counters.snapshots_failed += 1
        self._ctx.sink.report(SnapshotStatus(self.peer_id, False))

    def _fail_pending(self, *, closing: bool = False) -> None:
        """The connection is gone (or the link closed): so is everything queued for it."""
        counters = self._ctx.counters
        unsent = self._writing + (1 if self._tail else 0)
        lost = len(self._queue) + len(self._snapshots) + unsent
        counters.messages_dropped += lost
        counters.messages_sent -= unsent
        self._queue.clear()
        self._writing = 0
        self._tail = b""
        if self._snapshot is not None:
            self._snapshot = None
            self._snapshot_failed()
        while self._snapshots:
            self._snapshots.popleft()
            self._snapshot_failed()
        # A failed connection is news even with nothing queued (the peer may be gone); a link
        # closed on purpose (peer removed, URL changed) only reports what it lost.
        if lost or not closing:
            self._ctx.sink.report(Unreachable(self.peer_id))
