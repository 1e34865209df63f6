"""Two hooks into Hypercorn's internals.

The errors Hypercorn answers by itself, before the app sees a request — a malformed request
line, headers over the limit — answered in the API's JSON shape like every other error.

Hypercorn writes those answers in ``H11Protocol._send_error_response`` with an empty body;
``json_protocol_errors`` installs a subclass that writes ``{"error", "detail"}`` instead. It
reaches into Hypercorn's internals, so ``tests/http/test_http_edge.py`` checks the answers on a
real server: an upgrade that changes them fails there.

The verified client certificate of a TLS connection: Hypercorn does not hand it to the app
(ASGI's ``tls`` extension is not implemented), so ``name_client_certificates`` installs a TCP
server that records the certificate's common name for the connection's (client, server)
addresses while it is open, and ``client_cert_name(scope)`` looks it up; the TLS tests check it
on a real server.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from itertools import chain
from typing import Any

import h11
import hypercorn.protocol
import hypercorn.trio.run
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.utils import parse_socket_addr

from ._http import JSON, json_body

__all__ = ["client_cert_name", "json_protocol_errors", "name_client_certificates"]

_ERRORS = {
    400: ("bad request", "the request is not valid HTTP/1.1"),
    414: ("uri too long", "the request line is over the server's limit"),
    431: ("request header fields too large", "the headers are over the server's limit"),
}


class _JSONErrorsH11Protocol(H11Protocol):
    async def _send_error_response(self, status_code: int) -> None:
        error, detail = _ERRORS.get(status_code, ("bad request", "the request was refused"))
        body = json_body({"error": error, "detail": detail})
        headers = [
            (b"content-type", JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        response = h11.Response(
            status_code=status_code,
            headers=list(chain(headers, self.config.response_headers("h11"))),
        )
        await self._send_h11_event(response)
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())


def json_protocol_errors() -> None:
    """Make every Hypercorn connection opened from now on answer protocol errors in JSON."""
    hypercorn.protocol.H11Protocol = _JSONErrorsH11Protocol  # type: ignore[attr-defined]


_Address = tuple[Any, ...]
_cert_names: dict[tuple[_Address, _Address], str] = {}


class _CertNamingTCPServer(TCPServer):
    async def _read_data(self) -> None:
        # Called once the TLS handshake is done and before any request is read.
        found = _connection_name(self.stream)
        if found is None:
            await super()._read_data()
            return
        key, name = found
        _cert_names[key] = name
        try:
            await super()._read_data()
        finally:
            _cert_names.pop(key, None)


def _connection_name(stream: Any) -> tuple[tuple[_Address, _Address], str] | None:
    getpeercert = getattr(stream, "getpeercert", None)
    if getpeercert is None:
        return None  # plain TCP
    cert = getpeercert() or {}  # empty unless the certificate was verified
    names = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
    if not names:
        return None
    sock = stream.transport_stream.socket
    client = parse_socket_addr(sock.family, sock.getpeername())
    server = parse_socket_addr(sock.family, sock.getsockname())
    if client is None or server is None:
        return None
    return (tuple(client), tuple(server)), str(names[-1])


def client_cert_name(scope: MutableMapping[str, Any]) -> str | None:
    """The common name of the verified certificate the request's connection presented."""
    client, server = scope.get("client"), scope.get("server")
    if not client or not server:
        return None
    return _cert_names.get((tuple(client), tuple(server)))


def name_client_certificates() -> None:
    """Make every Hypercorn (Trio) server started from now on record client certificates."""
    hypercorn.trio.run.TCPServer = _CertNamingTCPServer  # type: ignore[attr-defined]
