"""Peer URLs in the seed's form, ``http://host:port``."""

from __future__ import annotations

import urllib.parse

__all__ = ["format_peer_url", "parse_peer_url"]

_EXAMPLE = "http://127.0.0.1:12379"


def parse_peer_url(url: str) -> tuple[str, int]:
    """The ``(host, port)`` of a peer URL; ``ValueError`` naming the problem otherwise.

    ``https`` is accepted as a synonym (whether a connection uses TLS is the transport's
    configuration, not the URL's). IPv6 hosts come without their brackets.

    >>> parse_peer_url("http://127.0.0.1:12379")
    ('127.0.0.1', 12379)
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"a peer URL must be a non-empty string like {_EXAMPLE}, got {url!r}")
    if any(c.isspace() for c in url):
        raise ValueError(f"peer URL {url!r} contains whitespace")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"peer URL {url!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"peer URL {url!r} must start with http:// (like {_EXAMPLE})")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"peer URL {url!r} must not carry credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"peer URL {url!r} must be just scheme, host and port (like {_EXAMPLE})")
    host = parts.hostname
    if not host:
        raise ValueError(f"peer URL {url!r} has no host")
    if port is None or port == 0:
        raise ValueError(f"peer URL {url!r} needs a port between 1 and 65535")
    return host, port


def format_peer_url(host: str, port: int) -> str:
    """The inverse of ``parse_peer_url``: ``http://host:port``, brackets around IPv6."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
