"""Who a proposal is for: the client a request came from, carried inside the command.

The daemon runs each request inside ``acting_for(user)`` (``user`` None: anonymous); every
command ``KVService`` proposes meanwhile is wrapped with that identity (``AsUser``), and every
replica checks it against the auth state in force when it applies. Outside ``acting_for`` (the
node's own work: lease expiry, checkpoints, automatic compaction) commands go bare.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Final

from ._commands import as_user

__all__ = ["acting_for", "for_requester", "requester"]


class _Node:
    """The node itself: no client."""


_NODE: Final = _Node()
_requester: ContextVar[str | _Node | None] = ContextVar("raftkv_requester", default=_NODE)


@contextmanager
def acting_for(user: str | None) -> Iterator[None]:
    """Propose every command of this task (and the tasks it starts) for ``user``."""
    token = _requester.set(user)
    try:
        yield
    finally:
        _requester.reset(token)


def requester() -> tuple[bool, str | None]:
    """(is there a client, its user name or None for anonymous)."""
    who = _requester.get()
    return (False, None) if isinstance(who, _Node) else (True, who)


def for_requester(command: bytes) -> bytes:
    """``command`` wrapped with the identity of the client this task acts for, if any."""
    client, user = requester()
    return as_user(user, command) if client else command
