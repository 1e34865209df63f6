"""Assemble and run one raftkvd node: storage, peer transport, Raft node, HTTP server.

Everything runs in one Trio nursery tree. The node stops on SIGTERM/SIGINT (HTTP stops taking
requests, in-flight ones are answered, storage is closed) or by itself once it learns that it
was removed from the cluster (exit code 0 in both cases).
"""

from __future__ import annotations

import errno
import logging
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

import raftkv
from raftkv import innermost
from raftkv.kv import AutoCompaction, KVService, KVStateMachine, Limits
from raftkv.storage import open_file_storage
from raftkv.transport import TcpOptions, TcpTransport, open_tcp_transport

from ._app import create_app
from ._datadir import check_data_dir, init_data_dir
from ._edge import ASGIApp
from ._forward import OnFirstUse
from ._logging import bind_node
from ._protocol import json_protocol_errors, name_client_certificates
from ._settings import Settings

__all__ = ["ClientTLS", "ServeOutcome", "hypercorn_config", "serve", "serve_http"]

log = logging.getLogger("raftkv.daemon")

T = TypeVar("T")


@dataclass(slots=True)
class ServeOutcome:
    reason: str = "stopped"


def _tls_contexts(settings: Settings) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    if settings.peer_cert_file is None:
        return None, None
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    for ctx in (server, client):
        ctx.load_cert_chain(str(settings.peer_cert_file), str(settings.peer_key_file))
        if settings.peer_trusted_ca_file is not None:
            ctx.load_verify_locations(str(settings.peer_trusted_ca_file))
    server.verify_mode = ssl.CERT_REQUIRED
    return server, client


def _forward_tls(settings: Settings) -> ssl.SSLContext | bool:
    """How this node's forwarder talks to the leader's client port: trusting ``--client-ca``
    (else ``--peer-trusted-ca-file``, else the system's CAs) and presenting the node's peer
    certificate, which the leader accepts when ``--client-ca`` signed it too."""
    if settings.client_cert_file is None:
        return True
    ca = settings.client_ca_file or settings.peer_trusted_ca_file
    ctx = ssl.create_default_context(cafile=None if ca is None else str(ca))
    if settings.peer_cert_file is not None:
        ctx.load_cert_chain(str(settings.peer_cert_file), str(settings.peer_key_file))
    return ctx


def _client_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = urlsplit(settings.peer_url).hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "http" if settings.client_cert_file is None else "https"
    return f"{scheme}://{host}:{settings.port}"


async def serve(settings: Settings, *, stop: trio.Event | None = None) -> ServeOutcome:
    """Run the node until stopped (``stop`` set, or a signal) or removed from the cluster.

    The HTTP server lives outside the node's scope: when the node fails (its disk is full, say),
    the requests in flight are answered (their outcome is unknown: 507) before the daemon
    exits, instead of being cut off with the node."""
    state = check_data_dir(settings)
    init_data_dir(state)
    if state.existing:
        log.info("data directory %s holds data: it wins over --cluster/--join", state.path)
    stop = stop or trio.Event()
    outcome = ServeOutcome()
    async with AsyncExitStack() as stack:
        storage = await stack.enter_async_context(
            open_file_storage(state.path / "raft", segment_bytes=settings.wal_segment_bytes)
        )
        transport = await stack.enter_async_context(
            _open_peer_transport(settings, state.cluster_id)
        )
        verify = _forward_tls(settings)  # its files read now: a bad one stops the start
        forward_client = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=settings.request_timeout + 1,
                transport=OnFirstUse(lambda: httpx.AsyncHTTPTransport(verify=verify)),
            )
        )
        config = hypercorn_config(settings.host, settings.port, _client_tls(settings))
        http = _ClientServer(config, settings.bind_retry)
        async with trio.open_nursery() as outer:
            outer.start_soon(_watch_signals, stop, outcome)
            try:
                async with raftkv.open_node(
                    _node_config(settings),
                    storage=storage,
                    transport=transport,
                    state_machine=(kv := KVStateMachine()),
                    peers=settings.peers,
                    join=settings.join,
                ) as node:
                    bind_node(lambda: _log_fields(node))
                    service = KVService(
                        node, kv, _limits(settings), token_ttl=settings.auth_token_ttl
                    )
                    app = create_app(
                        service,
                        forward_client=forward_client,
                        peer_stats=lambda: _peer_counters(transport),
                    )
                    await outer.start(http.run, app, service)
                    log.info(
                        "node %d serving clients on %s, peers on %s",
                        settings.node_id,
                        node.config.client_url,
                        settings.peer_url,
                    )
                    await _run_node(settings, service, stop, outcome)
                    await http.stop()  # in-flight requests are answered while the node runs
            finally:
                await http.stop()  # after a failure: answer what the node could not finish
            outer.cancel_scope.cancel()
    log.info("node %d stopped: %s", settings.node_id, outcome.reason)
    return outcome


async def _run_node(
    settings: Settings, service: KVService, stop: trio.Event, outcome: ServeOutcome
) -> None:
    """The node's own tasks, until ``stop`` is set (by a signal, or by the node's removal)."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_removal, service.node, stop, outcome)
        await nursery.start(service.leases.run)  # expires leases while this node leads
        await nursery.start(AutoCompaction(service, settings.auto_compaction_retention).run)
        await stop.wait()
        nursery.cancel_scope.cancel()


class _ClientServer:
    """Hypercorn serving the client API, stopped gracefully: in-flight requests are answered,
    watch streams end with the revision to resume from."""

    def __init__(self, config: HypercornConfig, bind_retry: float) -> None:
        self.config = config
        self.bind_retry = bind_retry
        self._service: KVService | None = None
        self._shutdown = trio.Event()
        self._done = trio.Event()

    async def run(
        self, app: ASGIApp, service: KVService, *, task_status: trio.TaskStatus[list[str]]
    ) -> None:
        self._service = service
        where = self.config.bind[0]
        try:
            await _retry_busy(
                f"client port {where}",
                self.bind_retry,
                lambda: serve_http(
                    app, self.config, shutdown_trigger=self._shutdown.wait, task_status=task_status
                ),
            )
        except* OSError as group:
            raise OSError(f"cannot serve clients on {where}: {_first_reason(group)}") from None
        finally:
            self._done.set()

    async def stop(self) -> None:
        if self._service is None:
            return  # never started
        if not self._shutdown.is_set():
            self._service.close()
        self._shutdown.set()
        await self._done.wait()


def _log_fields(node: raftkv.Node) -> dict[str, object]:
    position = node.raft_position()
    return {"node": node.id, "term": position[1], "role": node.role.value}


def _limits(settings: Settings) -> Limits:
    return Limits(max_key_bytes=settings.max_key_bytes, max_value_bytes=settings.max_value_bytes)


def _node_config(settings: Settings) -> raftkv.NodeConfig:
    return raftkv.NodeConfig(
        id=settings.node_id,
        tick_interval=settings.tick_interval,
        election_ticks=settings.election_ticks,
        heartbeat_ticks=settings.heartbeat_ticks,
        snapshot_count=settings.snapshot_count,
        catch_up_entries=settings.catch_up_entries,
        request_timeout=settings.request_timeout,
        client_url=_client_url(settings),
    )


@asynccontextmanager
async def _open_peer_transport(settings: Settings, cluster_id: str) -> AsyncIterator[TcpTransport]:
    peer = urlsplit(settings.peer_url)
    host, port = peer.hostname or "127.0.0.1", peer.port or 80
    server_tls, client_tls = _tls_contexts(settings)

    def opening() -> AbstractAsyncContextManager[TcpTransport]:
        return open_tcp_transport(
            settings.node_id,
            cluster_id,
            settings.peers,
            listen_host=host,
            listen_port=port,
            ssl_server_context=server_tls,
            ssl_client_context=client_tls,
            options=TcpOptions(),
        )

    async with AsyncExitStack() as stack:
        try:
            transport = await _retry_busy(
                f"peer port {host}:{port}",
                settings.bind_retry,
                lambda: stack.enter_async_context(opening()),
            )
        except OSError as exc:
            raise OSError(
                f"cannot listen for peers on {host}:{port}: {exc.strerror or exc}"
            ) from None
        yield transport


async def _retry_busy(what: str, window: float, attempt: Callable[[], Awaitable[T]]) -> T:
    """``attempt()``, tried again every second for ``window`` seconds while it fails because
    its port is in use (a connection closed a moment ago can hold one for a minute)."""
    deadline = trio.current_time() + window
    while True:
        try:
            return await attempt()
        except (OSError, BaseExceptionGroup) as exc:
            busy = innermost(exc)
            if not isinstance(busy, OSError) or busy.errno != errno.EADDRINUSE:
                raise
            left = deadline - trio.current_time()
            if left <= 0:
                raise busy from None
            log.warning("%s busy, retrying for up to %.0f s more", what, left)
        await trio.sleep(1.0)


@dataclass(frozen=True, slots=True)
class ClientTLS:
    """TLS on the client port: the node's certificate and key, and the CA that must have
    signed the clients' certificates (None: clients need none)."""

    cert_file: str
    key_file: str
    ca_file: str | None = None


def _client_tls(settings: Settings) -> ClientTLS | None:
    if settings.client_cert_file is None or settings.client_key_file is None:
        return None
    ca = None if settings.client_ca_file is None else str(settings.client_ca_file)
    return ClientTLS(str(settings.client_cert_file), str(settings.client_key_file), ca)


def hypercorn_config(host: str, port: int, tls: ClientTLS | None = None) -> HypercornConfig:
    """How raftkvd runs Hypercorn for its clients on ``host:port`` (HTTPS with ``tls``)."""
    config = HypercornConfig()
    if tls is not None:
        config.certfile, config.keyfile = tls.cert_file, tls.key_file
        if tls.ca_file is not None:
            config.ca_certs = tls.ca_file
            config.verify_mode = ssl.CERT_REQUIRED
        config.alpn_protocols = ["http/1.1"]  # no HTTP/2: nothing needs it yet (no gRPC API)
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("raftkv.http.server")
    config.graceful_timeout = 3.0
    config.keep_alive_timeout = 75.0
    # Clients keep their connections (the Python client pools them): Hypercorn's default closes
    # one after 1 000 requests, a reconnect every second or so for a busy client.
    config.keep_alive_max_requests = 1_000_000
    config.include_server_header = False  # nothing to gain from advertising the server
    return config


async def serve_http(
    app: ASGIApp,
    config: HypercornConfig,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` with Hypercorn until ``shutdown_trigger`` returns; every error, also
    those Hypercorn answers itself, in the API's JSON shape."""
    json_protocol_errors()
    name_client_certificates()
    await hypercorn_serve(
        app,  # type: ignore[arg-type]
        config,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


def _first_reason(group: BaseExceptionGroup[OSError]) -> str:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return getattr(exc, "strerror", None) or str(exc)


def _peer_counters(transport: TcpTransport) -> dict[str, int]:
    stats = transport.statistics()
    counters = {
        "sent": stats.messages_sent,
        "received": stats.messages_received,
        "dropped": stats.messages_dropped,
        "snapshots_sent": stats.snapshots_sent,
        "snapshots_failed": stats.snapshots_failed,
        "snapshots_received": stats.snapshots_received,
    }
    for refusal, count in stats.refused.items():
        counters[f"refused_{getattr(refusal, 'value', refusal)}"] = count
    return counters


async def _watch_signals(stop: trio.Event, outcome: ServeOutcome) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            outcome.reason = f"received {signal.Signals(signum).name}"
            log.info("%s: shutting down", outcome.reason)
            stop.set()
            return


async def _watch_removal(node: raftkv.Node, stop: trio.Event, outcome: ServeOutcome) -> None:
    await node.wait_removed()
    outcome.reason = "removed from the cluster"
    log.info("node %d was removed from the cluster: shutting down", node.id)
    # Let the answer to the DELETE that removed us (if it came here) go out first.
    await trio.sleep(0.5)
    stop.set()
