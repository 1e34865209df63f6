"""Every error raftkv raises on purpose, in one tree::

    RaftError
    ├── ProposalDropped          not accepted; will never apply; safe to retry
    │   ├── NotLeader            carries leader_hint
    │   └── ConfChangeRefused    another change pending, last voter, ...
    ├── InvalidConfig (ValueError)
    ├── InvalidKey (ValueError)  empty, not bytes, or over the key size limit
    ├── ValueTooLarge (ValueError)   over the value size limit; carries size and limit
    ├── Compacted                a revision below the compaction point; carries compact_revision
    ├── FutureRevision (ValueError)   a revision the store has not reached yet
    ├── WatchLost                a watch ended early (slow consumer, node stopping); resume_revision
    ├── UnknownLease             no such lease (never granted, revoked or expired); carries lease
    ├── LeaseIdTaken             a grant of a lease id that exists
    ├── AuthError                a request the store's auth rules refuse
    │   ├── Unauthenticated      no identity, or one that is not (or no longer) a user
    │   ├── PermissionDenied     the identity lacks a permission the request needs
    │   └── AuthRefused (ValueError)   an auth change that cannot be made (no such user, ...)
    ├── ReadyContractError (RuntimeError)   the runtime misused RawNode
    ├── NodeClosed               the node stopped before the request finished
    │   └── NodeFailed           ... because it failed (a full disk, a failed fsync); carries error
    ├── OutcomeUnknown           proposed, but we cannot tell if it applied (timeout, leader lost)
    ├── StorageError
    │   ├── CorruptLog           damage before the tail of the WAL; names file and offset
    │   ├── CorruptSnapshot      a snapshot file fails its checksum
    │   ├── StorageMismatch      missing segment or snapshot, commit beyond the log, ...
    │   └── StorageFailed        a write or fsync failed; the node must stop
    └── TransportError           a peer connection failed its handshake or framing

Storage and transport refusals of remote input are counted and logged, never raised to callers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .core import (
    ConfChangeRefused,
    InvalidConfig,
    NotLeader,
    ProposalDropped,
    RaftError,
    ReadyContractError,
)

__all__ = [
    "AuthError",
    "AuthRefused",
    "Compacted",
    "ConfChangeRefused",
    "CorruptLog",
    "CorruptSnapshot",
    "FutureRevision",
    "InvalidConfig",
    "InvalidKey",
    "LeaseIdTaken",
    "NodeClosed",
    "NodeFailed",
    "NotLeader",
    "OutcomeUnknown",
    "PermissionDenied",
    "ProposalDropped",
    "RaftError",
    "ReadyContractError",
    "StorageError",
    "StorageFailed",
    "StorageMismatch",
    "TransportError",
    "Unauthenticated",
    "UnknownLease",
    "ValueTooLarge",
    "WatchLost",
]


class InvalidKey(RaftError, ValueError):
    """A key that is empty, not bytes, or longer than the limit (HTTP 400)."""


class ValueTooLarge(RaftError, ValueError):
    """A value over the size limit (HTTP 413)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"value of {size} bytes is over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class Compacted(RaftError):
    """A read or watch at a revision below the compaction point (HTTP 410)."""

    def __init__(self, revision: int, compact_revision: int) -> None:
        super().__init__(
            f"revision {revision} is compacted: the oldest readable revision is {compact_revision}"
        )
        self.revision = revision
        self.compact_revision = compact_revision


class FutureRevision(RaftError, ValueError):
    """A read at a revision the store has not reached (HTTP 400)."""

    def __init__(self, revision: int, current: int) -> None:
        super().__init__(f"revision {revision} is in the future: the store is at {current}")
        self.revision = revision
        self.current = current


class WatchLost(RaftError):
    """A watch ended before its caller stopped it: its consumer fell behind, the node stopped,
    or the history it needed was compacted. Resume at ``resume_revision``."""

    def __init__(self, reason: str, resume_revision: int) -> None:
        super().__init__(f"{reason}; resume at revision {resume_revision}")
        self.reason = reason
        self.resume_revision = resume_revision


class UnknownLease(RaftError):
    """No lease with this id: it was never granted, or it was revoked or expired (HTTP 404)."""

    def __init__(self, lease: int) -> None:
        super().__init__(f"lease {lease} does not exist (never granted, revoked or expired)")
        self.lease = lease


class LeaseIdTaken(RaftError):
    """A grant asked for a lease id that is in use (HTTP 409)."""

    def __init__(self, lease: int) -> None:
        super().__init__(f"lease {lease} exists already")
        self.lease = lease


class AuthError(RaftError):
    """A request refused by the store's authentication or permission rules."""


class Unauthenticated(AuthError):
    """Auth is enabled and the request has no identity, or one that names no user (HTTP 401)."""


class PermissionDenied(AuthError):
    """The request's user lacks a permission it needs (HTTP 403); says nothing of the keys."""


class AuthRefused(AuthError, ValueError):
    """An auth change the store cannot make: an unknown user or role, one that exists already,
    enabling auth without a ``root`` user holding the ``root`` role (HTTP 400/404/409 by
    ``kind``)."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "not found", "exists" or "refused"


class NodeClosed(RaftError):
    """The node shut down (or was removed) before this request completed."""


class NodeFailed(NodeClosed):
    """The node stopped because of an error (its storage failed, say): ``error``."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"the node failed: {error}")
        self.error = error


class OutcomeUnknown(RaftError):
    """The request was proposed but its fate is unknown: it may or may not have been applied."""


class StorageError(RaftError):
    """Base of storage errors."""


class CorruptLog(StorageError):
    """The WAL is damaged before its tail; refusing to start rather than lose committed data."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"corrupt WAL {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class CorruptSnapshot(StorageError):
    """A snapshot file is damaged."""


class StorageMismatch(StorageError):
    """The data directory is inconsistent (missing segment or snapshot, commit beyond the log)."""


class StorageFailed(StorageError):
    """A write or fsync failed. The node must stop; the write is never acknowledged."""


class TransportError(RaftError):
    """A peer connection broke its protocol."""


@contextmanager
def one_error_unwrapped() -> Iterator[None]:
    """Around a nursery in a context manager: what stopped the block (the body's error, or a
    task's failure) comes out as itself, not wrapped in the nursery's exception group."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


def innermost(exc: BaseException) -> BaseException:
    """The first exception inside the exception groups that nurseries wrap around it."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
