"""The errors Hypercorn answers by itself, before the app sees a request — a malformed request
line, headers over the limit — answered in the API's JSON shape like every other error.

Hypercorn writes those answers in ``H11Protocol._send_error_response`` with an empty body;
``json_protocol_errors`` installs a subclass that writes ``{"error", "detail"}`` instead. It
reaches into Hypercorn's internals, so ``tests/http/test_http_edge.py`` checks the answers on a
real server: an upgrade that changes them fails there.
"""

from __future__ import annotations

from itertools import chain

import h11
import hypercorn.protocol
from hypercorn.protocol.h11 import H11Protocol

from ._http import JSON, json_body

__all__ = ["json_protocol_errors"]

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
