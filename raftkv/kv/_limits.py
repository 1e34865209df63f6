"""What a request may carry: ``Limits``, and the checks made before anything is proposed.

The state machine never checks a limit (a node's limits are its own configuration, and every
replica must apply the same commands alike); the service and the HTTP edge check them first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .._errors import InvalidKey, ValueTooLarge

__all__ = [
    "DEFAULT_MAX_KEY_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "MAX_INT",
    "Limits",
    "check_key",
    "check_prefix",
    "check_value_size",
]

DEFAULT_MAX_KEY_BYTES: Final = 1024
DEFAULT_MAX_VALUE_BYTES: Final = 3 * 512 * 1024  # 1.5 MiB
DEFAULT_MAX_LIST_LIMIT: Final = 10_000
MAX_INT: Final = (1 << 63) - 1  # revisions and indexes fit in an int64 everywhere


@dataclass(frozen=True, slots=True)
class Limits:
    """The sizes a node accepts; checked before a command is proposed."""

    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    max_list_limit: int = DEFAULT_MAX_LIST_LIMIT  # keys in one listing
    max_txn_ops: int = 128  # compares and operations in one transaction
    max_txn_bytes: int = 2 * 1024 * 1024  # one transaction's request, as a whole


def check_key(key: bytes, max_bytes: int = DEFAULT_MAX_KEY_BYTES) -> bytes:
    """Return ``key`` if it is a valid key: non-empty bytes of at most ``max_bytes``."""
    if not isinstance(key, bytes):
        raise InvalidKey(f"a key must be bytes, not {type(key).__name__}")
    if not key:
        raise InvalidKey("a key must not be empty")
    if len(key) > max_bytes:
        raise InvalidKey(f"key of {len(key)} bytes is over the limit of {max_bytes} bytes")
    return key


def check_prefix(prefix: bytes, max_bytes: int = DEFAULT_MAX_KEY_BYTES) -> bytes:
    """Return ``prefix`` if it can select keys: bytes (possibly empty: every key) of at most
    ``max_bytes``."""
    if not isinstance(prefix, bytes):
        raise InvalidKey(f"a prefix must be bytes, not {type(prefix).__name__}")
    if len(prefix) > max_bytes:
        raise InvalidKey(f"prefix of {len(prefix)} bytes is over the limit of {max_bytes} bytes")
    return prefix


def check_value_size(size: int, max_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> None:
    """Raise ``ValueTooLarge`` if a value of ``size`` bytes is over the limit.

    Takes a size, not the value, so a server can refuse a body from its Content-Length before
    reading it.
    """
    if size > max_bytes:
        raise ValueTooLarge(size, max_bytes)
