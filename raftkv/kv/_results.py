"""What the store answers: key-values, the result of every command, and watch events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AccessRefused",
    "ApplyResult",
    "AuthChanged",
    "AuthFailed",
    "CompactRefused",
    "CompactResult",
    "CompareFailed",
    "DeletePrefixResult",
    "DeleteResult",
    "InvalidCommand",
    "KeyValue",
    "LeaseExists",
    "LeaseGranted",
    "LeaseNotFound",
    "LeaseResult",
    "LeaseRevoked",
    "LeasesCheckpointed",
    "PutResult",
    "RangeResult",
    "TxnResponse",
    "TxnResult",
    "WatchBatch",
    "WatchEvent",
]


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int  # the revision of the put that created the key
    mod_revision: int  # the revision of the last put to it
    version: int  # puts since creation: 1 for a new key
    lease: int = 0  # the lease the key is attached to; 0: none


@dataclass(frozen=True, slots=True)
class PutResult:
    revision: int  # the store's revision after the put, which is the key's new mod_revision
    prev: KeyValue | None  # the key before the put, None if it was created


@dataclass(frozen=True, slots=True)
class DeleteResult:
    revision: int  # the store's revision after the delete (unchanged when nothing was deleted)
    prev: KeyValue | None  # what was deleted, None if the key did not exist

    @property
    def deleted(self) -> bool:
        return self.prev is not None


@dataclass(frozen=True, slots=True)
class DeletePrefixResult:
    revision: int  # the store's revision after the delete (unchanged when nothing matched)
    deleted: tuple[KeyValue, ...]  # what was deleted, in key order


@dataclass(frozen=True, slots=True)
class CompareFailed:
    """A compare-and-swap whose ``if_revision`` did not match: nothing changed."""

    key: bytes
    expected: int  # the command's if_revision
    mod_revision: int  # the key's actual mod_revision, 0 if it does not exist
    revision: int  # the store's revision


@dataclass(frozen=True, slots=True)
class CompactResult:
    revision: int  # the store's revision (compaction makes none)
    compact_revision: int  # the oldest revision still readable


@dataclass(frozen=True, slots=True)
class CompactRefused:
    """A compaction at a revision that is compacted already or in the future: nothing changed."""

    requested: int
    reason: str
    revision: int
    compact_revision: int


@dataclass(frozen=True, slots=True)
class InvalidCommand:
    """A committed entry that is not a command this version understands: nothing changed."""

    reason: str
    revision: int


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: tuple[KeyValue, ...]
    more: bool  # whether keys beyond ``limit`` matched
    revision: int  # the store's revision when it was read (not the revision read at)


TxnResponse = PutResult | DeleteResult | DeletePrefixResult | RangeResult


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool  # whether every compare held (the success branch ran)
    revision: int  # the store's revision after the transaction
    responses: tuple[TxnResponse, ...]  # one per operation of the branch that ran


@dataclass(frozen=True, slots=True)
class LeaseGranted:
    lease: int
    ttl: int


@dataclass(frozen=True, slots=True)
class LeaseExists:
    """A grant of an id that is taken: nothing changed."""

    lease: int


@dataclass(frozen=True, slots=True)
class LeaseNotFound:
    """A revoke of, or a put attached to, a lease that does not exist: nothing changed."""

    lease: int
    revision: int


@dataclass(frozen=True, slots=True)
class LeaseRevoked:
    lease: int
    revision: int  # the store's revision after the revoke (the one its keys' deletes made)
    deleted: int  # keys deleted with it


@dataclass(frozen=True, slots=True)
class LeasesCheckpointed:
    count: int  # leases whose remaining TTL was recorded


LeaseResult = LeaseGranted | LeaseExists | LeaseNotFound | LeaseRevoked | LeasesCheckpointed


@dataclass(frozen=True, slots=True)
class AccessRefused:
    """A client command the auth rules refused when it was applied: nothing changed.
    ``authenticated`` False: auth is enabled and ``user`` is None or no user."""

    user: str | None
    authenticated: bool
    revision: int


@dataclass(frozen=True, slots=True)
class AuthChanged:
    auth_revision: int  # the auth state's revision after the change
    revision: int = 0  # the store's revision when it applied (auth changes make none)


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """An auth change that could not be made: nothing changed."""

    reason: str
    kind: str  # "not found", "exists" or "refused"


AuthResult = AuthChanged | AuthFailed

ApplyResult = (
    PutResult
    | DeleteResult
    | DeletePrefixResult
    | CompareFailed
    | CompactResult
    | CompactRefused
    | TxnResult
    | LeaseResult
    | AuthResult
    | AccessRefused
    | InvalidCommand
)


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One key's change. A delete's ``kv`` has the key and the revision it was deleted at."""

    type: Literal["put", "delete"]
    kv: KeyValue
    prev_kv: KeyValue | None  # the version it replaced, if asked for and still retained


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """The events of one revision that touched watched keys, in the order they happened."""

    revision: int
    events: tuple[WatchEvent, ...]
