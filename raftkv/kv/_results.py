"""What the store answers: key-values and the result of every command."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ApplyResult",
    "CompareFailed",
    "DeleteResult",
    "InvalidCommand",
    "KeyValue",
    "PutResult",
    "RangeResult",
]


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int  # the revision of the put that created the key
    mod_revision: int  # the revision of the last put to it
    version: int  # puts since creation: 1 for a new key


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
class CompareFailed:
    """A compare-and-swap whose ``if_revision`` did not match: nothing changed."""

    key: bytes
    expected: int  # the command's if_revision
    mod_revision: int  # the key's actual mod_revision, 0 if it does not exist
    revision: int  # the store's revision


@dataclass(frozen=True, slots=True)
class InvalidCommand:
    """A committed entry that is not a command this version understands: nothing changed."""

    reason: str
    revision: int


ApplyResult = PutResult | DeleteResult | CompareFailed | InvalidCommand


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: tuple[KeyValue, ...]
    more: bool  # whether keys beyond ``limit`` matched
    revision: int
