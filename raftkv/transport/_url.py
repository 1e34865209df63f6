"""Peer URLs in the seed's form, ``http://host:port``: the one parser everyone uses."""

from __future__ import annotations

import urllib.parse

__all__ = ["format_peer_url", "normalize_peer_url", "parse_peer_url"]


def _split(text: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a peer URL; ``ValueError`` naming the problem otherwise."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"bad peer URL {text!r}: expected a non-empty http://host:port")
    if any(c.isspace() for c in text):
        raise ValueError(f"bad peer URL {text!r}: contains whitespace")
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad peer URL {text!r} is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"bad peer URL {text!r}: expected http://host:port")
    if not parts.hostname:
        raise ValueError(f"bad peer URL {text!r}: no host")
    if port is None or port == 0:
        raise ValueError(f"bad peer URL {text!r}: expected a port between 1 and 65535")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"bad peer URL {text!r}: expected only scheme://host:port, no credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"bad peer URL {text!r}: expected only scheme://host:port (just scheme, host and port)"
        )
    return parts.scheme, parts.hostname.lower(), port


def parse_peer_url(url: str) -> tuple[str, int]:
    """The ``(host, port)`` of a peer URL; ``ValueError`` naming the problem otherwise.

    ``https`` is accepted as a synonym (whether a connection uses TLS is the transport's
    configuration, not the URL's). IPv6 hosts come without their brackets.

    >>> parse_peer_url("http://127.0.0.1:12379")
    ('127.0.0.1', 12379)
    """
    _, host, port = _split(url)
    return host, port


def normalize_peer_url(url: str) -> str:
    """A peer URL as ``scheme://host:port`` (lower-case scheme and host, brackets around IPv6);
    ``ValueError`` naming the problem otherwise.

    >>> normalize_peer_url("HTTP://Node-1:12379/")
    'http://node-1:12379'
    """
    scheme, host, port = _split(url)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def format_peer_url(host: str, port: int) -> str:
    """The inverse of ``parse_peer_url``: ``http://host:port``, brackets around IPv6."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
