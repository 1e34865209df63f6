"""What the client raises, in one tree (each also is the raftkv error it corresponds to)::

    raftkv.RaftError
    └── ClientError                 a request that did not succeed; status, error, detail, endpoint
        ├── NotFound                404
        │   ├── KeyNotFound         404 for a key
        │   └── LeaseNotFound (raftkv.UnknownLease)   404 for a lease: never granted, revoked
        │                           or expired
        ├── LeaseLost               a lease (and what it held: a lock, leadership) may be gone
        ├── PreconditionFailed      412: compare-and-swap mismatch; mod_revision if the server said
        ├── BadRequest (ValueError) 400, 405: a bad key, id, URL or body; retrying will not help
        │   ├── PayloadTooLarge     413: a value (or transaction) over the server's limit
        │   └── FutureRevision (raftkv.FutureRevision)
        │                           400: a read at a revision the store has not reached
        ├── Compacted (raftkv.Compacted)      410: a read or watch below the compaction point;
        │                                     compact_revision is the oldest one left
        ├── Conflict (ConfChangeRefused)      409: another membership change is pending, ...
        ├── Unavailable (ProposalDropped)     503 (no leader, no quorum, shutting down) or no
        │                                     endpoint answered: certainly not applied, retry later
        ├── OutcomeUnknown (raftkv.OutcomeUnknown)
        │                           504 for a write, or the connection broke after a write was
        │                           sent: it may or may not have been applied
        └── ServerError             any other unexpected answer

``Unavailable`` is raised only after the client's own retries (``RetryPolicy``) ran out.
"""

from __future__ import annotations

from .._errors import Compacted as _Compacted
from .._errors import ConfChangeRefused, ProposalDropped, RaftError, UnknownLease
from .._errors import FutureRevision as _FutureRevision
from .._errors import OutcomeUnknown as _OutcomeUnknown

__all__ = [
    "BadRequest",
    "ClientError",
    "Compacted",
    "Conflict",
    "FutureRevision",
    "KeyNotFound",
    "LeaseLost",
    "LeaseNotFound",
    "NotFound",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ServerError",
    "Unavailable",
]


class ClientError(RaftError):
    """A request that did not succeed.

    ``status`` is the HTTP status (None when no server answered); ``error`` and ``detail`` come
    from the server's JSON error body when there was one; ``endpoint`` is the server that
    answered or failed last.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        detail: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        Exception.__init__(self, message)
        self.reason = message  # what ProposalDropped and its kin call it
        self.status = status
        self.error = error
        self.detail = detail
        self.endpoint = endpoint


class NotFound(ClientError):
    """404: no such key, member or route."""


class KeyNotFound(NotFound):
    """The key does not exist."""


class LeaseNotFound(NotFound, UnknownLease):
    """The lease does not exist: it was never granted, or it was revoked or expired."""

    lease: int = 0


class LeaseLost(ClientError):
    """A lease kept alive in the background can no longer be known to live: it expired or was
    revoked, or no keep-alive was answered within its TTL. What it held (a lock, leadership in
    an election) may belong to another client now."""


class PreconditionFailed(ClientError):
    """412: the key's modification revision was not the one required (``If-Match`` or
    ``If-None-Match: *``); nothing changed. ``mod_revision`` is the key's current one when the
    server told it (0: the key does not exist)."""

    mod_revision: int | None = None


class BadRequest(ClientError, ValueError):
    """400 (or 405): the request is wrong; retrying it will not help."""


class PayloadTooLarge(BadRequest):
    """413: the value is over the server's ``--max-value-bytes`` (or a transaction over its
    size limit)."""


class FutureRevision(BadRequest, _FutureRevision):
    """400: a read at a revision the answering node has not reached. ``current`` is its
    revision when the server told it (else 0)."""

    revision: int = 0  # the revision asked for, when known
    current: int = 0


class Compacted(ClientError, _Compacted):
    """410: the revision asked for (a read at a revision, or where a watch starts or resumes)
    is below the compaction point: that history is gone. ``compact_revision`` is the oldest
    revision still readable (a watch can start right after it), when the server told it."""

    revision: int = 0  # the revision asked for, when known
    compact_revision: int = 0


class Conflict(ClientError, ConfChangeRefused):
    """409: a membership change refused (another one is pending, it would remove the last
    voter, ...)."""


class Unavailable(ClientError, ProposalDropped):
    """No server could take the request (503, or none answered): it was certainly not applied.

    ``retry_after`` is the server's ``Retry-After`` in seconds, if it sent one.
    """

    retry_after: float | None = None


class OutcomeUnknown(ClientError, _OutcomeUnknown):
    """A write whose fate is unknown: it timed out after it was proposed (504) or the connection
    broke after it was sent. Read the key to find out; retrying blindly may apply it twice."""


class ServerError(ClientError):
    """An answer the client did not expect (500, a malformed body, ...)."""
