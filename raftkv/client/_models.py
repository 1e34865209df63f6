"""What the client returns: small frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from ..kv import KeyValue

__all__ = [
    "DeleteResponse",
    "KeyValue",
    "Member",
    "Position",
    "PutResponse",
    "RangeResponse",
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
