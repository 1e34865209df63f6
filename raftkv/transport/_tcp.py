"""The TCP peer transport: ``open_tcp_transport`` and ``TcpTransport``.

This module holds the membership (peer URLs, removed members) and the inbound side: the listener
and one task per accepted connection, which runs TLS (optional), the handshake, then reads records
and delivers their messages. Outbound traffic is ``_peer.PeerLink``'s job; the frame and handshake
formats live in ``_framing``, ``_handshake`` and ``_records`` (see docs/transport.md).

Every refusal closes only the offending connection and is counted in ``statistics().refused``;
the listener keeps serving.
"""

from __future__ import annotations

import logging
import random
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial

import trio

from .._errors import one_error_unwrapped
from ..core import InstallSnapshot, Message
from ._base import (
    Inbound,
    Refusal,
    Removed,
    SnapshotStatus,
    TransportEvent,
    TransportStatistics,
    Unreachable,
)
from ._events import EventSink
from ._framing import FrameReader, ProtocolViolation
from ._handshake import (
    MAX_CLUSTER_ID,
    MAX_HANDSHAKE_FRAME,
    decode_hello,
    encode_accept,
    encode_refusal,
    judge,
)
from ._options import TcpOptions
from ._peer import LinkContext, PeerLink
from ._records import RecordDecoder, SnapshotSpool
from ._stats import Counters
from ._url import format_peer_url, parse_peer_url

__all__ = ["TcpTransport", "open_tcp_transport"]

log = logging.getLogger("raftkv.transport.tcp")

_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
_CONFIG_REFUSALS = frozenset(
    {Refusal.WRONG_CLUSTER, Refusal.WRONG_RECEIVER, Refusal.UNKNOWN_SENDER, Refusal.INCOMPATIBLE}
)
# How long a removed member's connection may take to hear why it is being closed.
_GOODBYE_TIMEOUT = 1.0


@dataclass(slots=True, eq=False)
class _InboundConnection:
    peer: int
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    removed: bool = False  # closed because the peer was removed: tell it before closing


@asynccontextmanager
async def open_tcp_transport(
    node_id: int,
    cluster_id: str,
    peers: Mapping[int, str],
    *,
    listen_host: str,
    listen_port: int,
    ssl_server_context: ssl.SSLContext | None = None,
    ssl_client_context: ssl.SSLContext | None = None,
    options: TcpOptions | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[TcpTransport]:
    """Listen on ``listen_host:listen_port`` and connect to ``peers`` ({id: "http://host:port"}).

    ``peers`` may include this node's own entry (it is ignored), as the daemon's ``--cluster``
    list does. ``listen_port=0`` picks a free port: read it back from ``listen_port`` / ``url``
    (give a single address as ``listen_host`` then). Outgoing connections are bound to
    ``listen_host`` unless it is a wildcard address.

    TLS is all or nothing: pass both contexts or neither. For mutual TLS the server context must
    require client certificates (``verify_mode = ssl.CERT_REQUIRED``) and the client context
    must carry this node's certificate. Peers are checked against the server name in their URL.

    ``rng`` only jitters reconnect delays. Raises ``ValueError`` for a bad argument (a malformed
    URL, an empty cluster id) and ``OSError`` if the address cannot be bound.

    Example::

        async with open_tcp_transport(
            1, "prod", {2: "http://10.0.0.2:12379", 3: "http://10.0.0.3:12379"},
            listen_host="10.0.0.1", listen_port=12379,
        ) as transport:
            transport.send(messages)
            async for event in transport.events: ...
    """
    if node_id < 1:
        raise ValueError(f"node ids are >= 1, got {node_id}")
    if not cluster_id or len(cluster_id) > MAX_CLUSTER_ID:
        raise ValueError(f"the cluster id must have 1 to {MAX_CLUSTER_ID} characters")
    for peer_id, url in peers.items():
        if peer_id < 1:
            raise ValueError(f"node ids are >= 1, got {peer_id}")
        parse_peer_url(url)
    if (ssl_server_context is None) != (ssl_client_context is None):
        raise ValueError("TLS needs both ssl_server_context and ssl_client_context, or neither")
    options = options or TcpOptions()
    listeners = await trio.open_tcp_listeners(listen_port, host=listen_host or None)
    port: int = listeners[0].socket.getsockname()[1]
    with one_error_unwrapped():
        async with trio.open_nursery() as nursery:
            transport = TcpTransport(
                node_id,
                cluster_id,
                options=options,
                ssl_server_context=ssl_server_context,
                ssl_client_context=ssl_client_context,
                listen_host=listen_host,
                listen_port=port,
                rng=rng or random.Random(),
                nursery=nursery,
            )
            nursery.start_soon(transport._sink.run)
            # serve_listeners owns (and closes) the listeners from here on.
            await nursery.start(
                partial(
                    trio.serve_listeners,
                    transport._serve_connection,
                    listeners,
                    handler_nursery=nursery,
                )
            )
            for peer_id, url in peers.items():
                transport.add_peer(peer_id, url)
            try:
                yield transport
            finally:
                transport._close()
                nursery.cancel_scope.cancel()


class TcpTransport:
    """A node's peer transport over TCP; implements ``Transport``. See ``open_tcp_transport``."""

    def __init__(
        self,
        node_id: int,
        cluster_id: str,
        *,
        options: TcpOptions,
        ssl_server_context: ssl.SSLContext | None,
        ssl_client_context: ssl.SSLContext | None,
        listen_host: str,
        listen_port: int,
        rng: random.Random,
        nursery: trio.Nursery,
    ) -> None:
        self._id = node_id
        self._cluster_id = cluster_id
        self._options = options
        self._ssl_server_context = ssl_server_context
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._nursery = nursery
        self._sink = EventSink(options.events_buffer)
        self._counters = Counters()
        self._urls: dict[int, str] = {}
        self._removed: set[int] = set()
        self._removed_by: set[int] = set()
        self._links: dict[int, PeerLink] = {}
        self._inbound: dict[int, _InboundConnection] = {}
        self._spool: SnapshotSpool | None = None
        self._closed = False
        self._link_context = LinkContext(
            node_id=node_id,
            cluster_id=cluster_id,
            options=options,
            ssl_context=ssl_client_context,
            local_address=None if listen_host in _WILDCARD_HOSTS else listen_host,
            sink=self._sink,
            counters=self._counters,
            rng=rng,
            told_removed=self._told_removed,
        )

    # -- the Transport protocol ------------------------------------------------------------

    @property
    def events(self) -> trio.MemoryReceiveChannel[TransportEvent]:
        return self._sink.receive

    def send(self, messages: Sequence[Message]) -> None:
        if self._closed:
            raise trio.ClosedResourceError("transport is closed")
        for m in messages:
            if m.src != self._id:
                raise ValueError(f"node {self._id} cannot send a message from {m.src}")
            link = self._links.get(m.dst)
            if link is not None:
                link.push(m)
                continue
            # No URL for it (unknown, removed, or ourselves): the message is lost.
            self._counters.messages_dropped += 1
            self._sink.report(Unreachable(m.dst))
            if isinstance(m, InstallSnapshot):
                self._counters.snapshots_failed += 1
                self._sink.report(SnapshotStatus(m.dst, False))

    def add_peer(self, node_id: int, url: str) -> None:
        """Learn ``node_id`` at ``url`` ("http://host:port"); ``ValueError`` for a bad URL.

        A changed URL drops the current connection (and its queue) and dials the new address.
        """
        if node_id < 1:
            raise ValueError(f"node ids are >= 1, got {node_id}")
        parse_peer_url(url)
        if self._closed:
            raise trio.ClosedResourceError("transport is closed")
        self._removed.discard(node_id)
        self._urls[node_id] = url
        if node_id == self._id:
            return
        old = self._links.get(node_id)
        if old is not None:
            if old.url == url:
                return
            old.close()
        link = self._links[node_id] = PeerLink(self._link_context, node_id, url)
        self._nursery.start_soon(link.run)

    def remove_peer(self, node_id: int) -> None:
        self._urls.pop(node_id, None)
        if node_id == self._id:
            return
        self._removed.add(node_id)
        link = self._links.pop(node_id, None)
        if link is not None:
            link.close()
        conn = self._inbound.get(node_id)
        if conn is not None:
            conn.removed = True
            conn.scope.cancel()

    def statistics(self) -> TransportStatistics:
        return self._counters.freeze()

    # -- more --------------------------------------------------------------------------------

    @property
    def node_id(self) -> int:
        return self._id

    @property
    def cluster_id(self) -> str:
        return self._cluster_id

    @property
    def listen_port(self) -> int:
        """The port actually bound (useful after ``listen_port=0``)."""
        return self._listen_port

    @property
    def url(self) -> str:
        """This node's peer URL as others should dial it."""
        return format_peer_url(self._listen_host or "127.0.0.1", self._listen_port)

    @property
    def peers(self) -> dict[int, str]:
        """The known members' URLs (a copy)."""
        return dict(self._urls)

    def spool_snapshots(self, spool: SnapshotSpool) -> None:
        """Write snapshots received from now on through ``spool`` (a storage's
        ``begin_snapshot``) as their chunks arrive, and deliver them over the files written,
        instead of reassembling them in memory."""
        self._spool = spool

    def is_connected(self, peer: int) -> bool:
        """Whether the outbound connection to ``peer`` is up right now."""
        link = self._links.get(peer)
        return link is not None and link.connected

    def _told_removed(self, by: int) -> None:
        if by not in self._removed_by:
            self._removed_by.add(by)
            self._sink.report(Removed(by))

    def _close(self) -> None:
        self._closed = True
        self._sink.close()

    # -- inbound connections -----------------------------------------------------------------

    async def _serve_connection(self, tcp: trio.SocketStream) -> None:
        """One accepted connection, from handshake to close (serve_listeners closes ``tcp``)."""
        try:
            accepted = await self._handshake(tcp)
        except ProtocolViolation as exc:
            self._refused(exc)
            return
        if accepted is not None:
            await self._receive(*accepted)

    def _refused(self, exc: ProtocolViolation) -> None:
        # A misconfigured member is worth an operator's attention; garbage is not.
        level = logging.INFO if exc.reason in _CONFIG_REFUSALS else logging.DEBUG
        log.log(level, "node %d refused a peer connection: %s", self._id, exc)
        self._counters.refused[exc.reason] += 1

    async def _handshake(
        self, tcp: trio.SocketStream
    ) -> tuple[int, trio.abc.Stream, FrameReader] | None:
        """TLS and the hello within ``handshake_timeout``.

        Returns the peer, or None once a well-formed hello was refused (counted, and answered
        with the reason). Raises ``ProtocolViolation`` for anything malformed.
        """
        try:
            with trio.fail_after(self._options.handshake_timeout):
                stream: trio.abc.Stream = tcp
                if self._ssl_server_context is not None:
                    stream = trio.SSLStream(tcp, self._ssl_server_context, server_side=True)
                    try:
                        await stream.do_handshake()
                    except _STREAM_ERRORS as exc:
                        raise ProtocolViolation(Refusal.TLS, repr(exc)) from None
                reader = FrameReader(stream, MAX_HANDSHAKE_FRAME)
                try:
                    payload = await reader.read()
                except _STREAM_ERRORS as exc:
                    raise ProtocolViolation(Refusal.BAD_HANDSHAKE, repr(exc)) from None
                if payload is None:
                    raise ProtocolViolation(Refusal.BAD_HANDSHAKE, "closed before the handshake")
                hello = decode_hello(payload)
                refusal = judge(
                    hello,
                    cluster_id=self._cluster_id,
                    node_id=self._id,
                    members=self._urls,
                    removed=self._removed,
                )
                if refusal is not None:
                    # Counted before the answer, so that the dialer never sees it first.
                    self._refused(refusal)
                    with suppress(*_STREAM_ERRORS):
                        await stream.send_all(encode_refusal(refusal.reason, refusal.detail))
                    return None
                try:
                    await stream.send_all(encode_accept())
                except _STREAM_ERRORS as exc:
                    raise ProtocolViolation(Refusal.BAD_HANDSHAKE, repr(exc)) from None
                return hello.src, stream, reader
        except trio.TooSlowError:
            raise ProtocolViolation(
                Refusal.HANDSHAKE_TIMEOUT, f"no handshake in {self._options.handshake_timeout}s"
            ) from None

    async def _receive(self, peer: int, stream: trio.abc.Stream, reader: FrameReader) -> None:
        conn = _InboundConnection(peer)
        old = self._inbound.get(peer)
        if old is not None:
            # The peer dialed again: the old connection is dead on its side (a restart).
            old.scope.cancel()
        self._inbound[peer] = conn
        # remove_peer may have run while we answered the handshake.
        if peer not in self._urls:
            conn.removed = peer in self._removed
            conn.scope.cancel()
        reader.max_frame_size = self._options.max_frame_size
        try:
            with conn.scope:
                await self._deliver_from(peer, reader)
        except ProtocolViolation as exc:
            self._refused(exc)
        except _STREAM_ERRORS as exc:
            log.debug("node %d: connection from %d ended: %r", self._id, peer, exc)
        finally:
            if self._inbound.get(peer) is conn:
                del self._inbound[peer]
        if conn.removed:
            # Tell it why, so that its transport reports Removed (best effort).
            refusal = encode_refusal(Refusal.REMOVED, f"node {peer} was removed from the cluster")
            with trio.move_on_after(_GOODBYE_TIMEOUT):
                with suppress(*_STREAM_ERRORS):
                    await stream.send_all(refusal)

    async def _deliver_from(self, peer: int, reader: FrameReader) -> None:
        decoder = RecordDecoder(peer, self._id, self._options.max_snapshot_size, self._spool)
        try:
            await self._deliver_records(reader, decoder)
        finally:
            decoder.close()

    async def _deliver_records(self, reader: FrameReader, decoder: RecordDecoder) -> None:
        counters = self._counters
        while True:
            payload = await reader.read()
            if payload is None:
                return
            message = decoder.feed(payload)
            if decoder.spooling:
                message = await decoder.drain()
            if message is not None:
                # Counted first: whoever sees the event must see it counted.
                counters.messages_received += 1
                if isinstance(message, InstallSnapshot):
                    counters.snapshots_received += 1
                await self._sink.deliver(Inbound(message))
