"""What the client returns: small frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from ..kv import KeyValue

__all__ = [
    "CompactResponse",
    "DeleteResponse",
    "KeyValue",
    "Leader",
    "LeaseGrant",
    "LeaseRevoked",
    "LeaseStatus",
    "Member",
    "Position",
    "PutResponse",
    "RangeResponse",
    "TxnDeleteResult",
    "TxnGetResult",
    "TxnOpResult",
    "TxnPutResult",
    "TxnRangeResult",
    "TxnResponse",
    "Value",
]


@dataclass(frozen=True, slots=True)
class Position:
    """The Raft position a response reflects (``X-Raft-Index``, ``X-Raft-Term``)."""

    index: int
    term: int


@dataclass(frozen=True, slots=True)
class Value:
    """A key's value, as ``GET /v1/kv/<key>`` returns it."""

    key: bytes
    value: bytes
    mod_revision: int | None  # from the ETag; pass it as if_revision for compare-and-swap
    position: Position | None

    @property
    def text(self) -> str:
        """The value decoded as UTF-8."""
        return self.value.decode()


@dataclass(frozen=True, slots=True)
class PutResponse:
    revision: int | None  # the key's new mod_revision (the ETag), if the server sent it
    position: Position | None


@dataclass(frozen=True, slots=True)
class DeleteResponse:
    revision: int | None  # the store's revision after the delete, if the server sent it
    position: Position | None
    deleted: int = 1  # keys deleted (a prefix delete: any number, 0 included)


@dataclass(frozen=True, slots=True)
class CompactResponse:
    revision: int  # the store's revision (a compaction makes none)
    compact_revision: int  # the oldest revision still readable
    position: Position | None


@dataclass(frozen=True, slots=True)
class RangeResponse:
    kvs: tuple[KeyValue, ...]
    revision: int  # the store's revision the listing reflects
    more: bool  # whether more keys matched than the limit let through
    position: Position | None


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    peer_url: str
    client_url: str | None = None
    voter: bool = True  # False: a learner, catching up before it is promoted
    leader: bool = False


@dataclass(frozen=True, slots=True)
class TxnPutResult:
    revision: int  # the transaction's revision
    prev_kv: KeyValue | None  # the key before the put; None if the put created it


@dataclass(frozen=True, slots=True)
class TxnGetResult:
    kvs: tuple[KeyValue, ...]  # the key, or nothing if it does not exist

    @property
    def kv(self) -> KeyValue | None:
        return self.kvs[0] if self.kvs else None


@dataclass(frozen=True, slots=True)
class TxnRangeResult:
    kvs: tuple[KeyValue, ...]  # in key order, at most the range's limit
    more: bool  # whether more keys matched


@dataclass(frozen=True, slots=True)
class TxnDeleteResult:
    deleted: int  # keys deleted


TxnOpResult = TxnPutResult | TxnGetResult | TxnRangeResult | TxnDeleteResult


@dataclass(frozen=True, slots=True)
class TxnResponse:
    """What a transaction did: ``succeeded`` tells which branch ran (every compare held: the
    ``then`` operations; else the ``otherwise`` ones), with one result per operation."""

    succeeded: bool
    revision: int  # the store's revision after the transaction
    responses: tuple[TxnOpResult, ...]
    position: Position | None


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    id: int
    ttl: int  # seconds granted


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """A lease by the leader's clock (``GET /v1/leases/<id>``)."""

    id: int
    ttl: int  # seconds left, rounded up; -1: expired, its revocation under way
    granted_ttl: int
    keys: tuple[bytes, ...] | None  # attached keys, in key order (None: not asked for)


@dataclass(frozen=True, slots=True)
class LeaseRevoked:
    id: int
    revision: int  # the store's revision after the revocation
    deleted: int  # keys it deleted


@dataclass(frozen=True, slots=True)
class Leader:
    """An election's leader: its key (``<name>/<lease id>``), the value it proclaims, and the
    revision that created its key (which grows from leader to leader: a fencing token)."""

    key: bytes
    value: bytes
    revision: int

    @property
    def text(self) -> str:
        return self.value.decode()
