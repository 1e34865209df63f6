"""The Quart-Trio app behind the raw routes: its error handlers and ``Reply`` -> ``Response``.

Quart serves every route the raw path does not (members, leadership, operations). Its errors
take the same JSON shape as everywhere else.
"""

from __future__ import annotations

import logging
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from ._http import HTTPError, Reply, error_for_exception

__all__ = ["as_response", "json_object", "new_quart_app"]

log = logging.getLogger("raftkv.http")


def as_response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, reply.headers)


async def json_object(example: str) -> dict[str, Any]:
    """The current request's body as a JSON object; 400 saying what was expected if not."""
    body = await request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise HTTPError(400, "bad body", f"expected {example}")
    return body


def new_quart_app(max_body_bytes: int) -> QuartTrio:
    app = QuartTrio("raftkv")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    @app.errorhandler(HTTPException)
    async def _http_exception(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        if status == 405:
            headers["Allow"] = ", ".join(sorted(getattr(exc, "valid_methods", None) or ()))
        if status == 413:
            detail = f"the body is over the limit of {max_body_bytes} bytes"
        else:
            detail = exc.description or ""
        error = (exc.name or "error").lower()
        return as_response(HTTPError(status, error, detail, headers).reply())

    @app.errorhandler(Exception)
    async def _exception(exc: Exception) -> Response:
        error = error_for_exception(exc)
        if error is None:
            log.exception("internal error on %s %s", request.method, request.path)
            error = HTTPError(500, "internal error", "see the server log")
        return as_response(error.reply())

    return app
