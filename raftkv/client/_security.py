"""TLS and credentials for ``Client`` and ``AsyncClient`` (no I/O here).

TLS: ``ca`` (the CA bundle that signed the servers' certificates; default: the system's),
``cert`` and ``key`` (this client's certificate, for a cluster started with ``--client-ca``),
or a ready ``ssl_context``. Credentials: a ``token`` from ``POST /v1/auth/token``, or ``user``
and ``password``, with which the client logs in on the first 401 and again when its token
expires (a certificate's common name needs neither).
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from ._calls import raise_for_status
from ._errors import ServerError

__all__ = ["Credentials", "login_request", "tls_verify", "token_from"]


def tls_verify(
    verify: Any,
    *,
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Any:
    """What to give httpx as ``verify``: ``ssl_context``, or one built from the files."""
    if ssl_context is not None:
        if ca is not None or cert is not None:
            raise ValueError("give ssl_context, or ca/cert/key, not both")
        return ssl_context
    if ca is None and cert is None:
        return verify
    if (cert is None) != (key is None):
        raise ValueError("cert and key go together")
    context = ssl.create_default_context(cafile=ca)
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str | None = None
    user: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            raise ValueError("user and password go together")
        if self.token is not None and self.user is not None:
            raise ValueError("give a token, or a user and password, not both")

    @property
    def can_log_in(self) -> bool:
        return self.user is not None

    def first_headers(self) -> dict[str, str]:
        return {} if self.token is None else {"authorization": f"Bearer {self.token}"}


def login_request(credentials: Credentials) -> tuple[str, bytes, dict[str, str]]:
    """The (target, body, headers) of the login the credentials make."""
    body = json.dumps({"user": credentials.user, "password": credentials.password}).encode()
    return "/v1/auth/token", body, {"content-type": "application/json"}


def token_from(response: httpx.Response, endpoint: str) -> str:
    """The token a login answered; the ``ClientError`` its failure stands for."""
    raise_for_status(response, endpoint, idempotent=True)
    token = response.json().get("token") if response.content else None
    if not isinstance(token, str):
        raise ServerError(f"no token in the login answer of {endpoint}", endpoint=endpoint)
    return token
