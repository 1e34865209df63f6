"""The key-value state machine: commands, apply, queries, snapshot and restore. Pure: no I/O.

Every replica applies the same committed commands in the same order and must end in the same
state with the same results. Hence ``apply`` never checks anything a node can configure (size
limits are checked before a command is proposed: ``check_key``, ``check_value_size``,
``encode_put``), and a command it cannot decode becomes an ``InvalidCommand`` result, never an
exception: a bad entry in the log must not stop every node of the cluster.

Revisions work as in etcd. ``revision`` counts successful mutations. Each key records the revision
that created it, the one that last modified it and its ``version`` (modifications since creation).
An absent key's modification revision is 0, so a compare-and-swap with ``if_revision=0`` means
"create only", and ``if_revision=n`` means "only if the key was last modified at revision n".

Command format, CBOR, version ``COMMAND_VERSION``::

    [1, 1, key, value, if_revision | null]      put
    [1, 2, key, if_revision | null]             delete

Snapshot format: a CBOR sequence (RFC 8742), so it can be written and read one record at a time::

    ["raftkv-kv", 1, revision, applied_index, count]        header
    [key, value, create_revision, mod_revision, version]    count records, in key order
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

import cbor2

from ._errors import CorruptSnapshot, RaftError
from ._sortedkeys import SortedKeys

__all__ = [
    "COMMAND_VERSION",
    "DEFAULT_MAX_KEY_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "ApplyResult",
    "Command",
    "CompareFailed",
    "DeleteCommand",
    "DeleteResult",
    "InvalidCommand",
    "InvalidKey",
    "KVStateMachine",
    "KeyValue",
    "PutCommand",
    "PutResult",
    "RangeResult",
    "ValueTooLarge",
    "check_key",
    "check_value_size",
    "decode_command",
    "encode_command",
    "encode_delete",
    "encode_put",
]

COMMAND_VERSION: Final = 1
SNAPSHOT_MAGIC: Final = "raftkv-kv"
SNAPSHOT_VERSION: Final = 1
DEFAULT_MAX_KEY_BYTES: Final = 1024
DEFAULT_MAX_VALUE_BYTES: Final = 3 * 512 * 1024  # 1.5 MiB

_OP_PUT: Final = 1
_OP_DELETE: Final = 2
_MAX_INT: Final = (1 << 63) - 1  # revisions and indexes fit in an int64 everywhere


# -- input validation (before proposing) --------------------------------------------------------


class InvalidKey(RaftError, ValueError):
    """A key that is empty, not bytes, or longer than the limit (HTTP 400)."""


class ValueTooLarge(RaftError, ValueError):
    """A value over the size limit (HTTP 413)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"value of {size} bytes is over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def check_key(key: bytes, max_bytes: int = DEFAULT_MAX_KEY_BYTES) -> bytes:
    """Return ``key`` if it is a valid key: non-empty bytes of at most ``max_bytes``."""
    if not isinstance(key, bytes):
        raise InvalidKey(f"a key must be bytes, not {type(key).__name__}")
    if not key:
        raise InvalidKey("a key must not be empty")
    if len(key) > max_bytes:
        raise InvalidKey(f"key of {len(key)} bytes is over the limit of {max_bytes} bytes")
    return key


def check_value_size(size: int, max_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> None:
    """Raise ``ValueTooLarge`` if a value of ``size`` bytes is over the limit.

    Takes a size, not the value, so a server can refuse a body from its Content-Length before
    reading it.
    """
    if size > max_bytes:
        raise ValueTooLarge(size, max_bytes)


def _check_if_revision(if_revision: int | None) -> None:
    if if_revision is not None and (
        type(if_revision) is not int or not 0 <= if_revision <= _MAX_INT
    ):
        raise ValueError(f"if_revision must be an integer >= 0, not {if_revision!r}")


# -- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PutCommand:
    key: bytes
    value: bytes
    # None: unconditional; 0: only if the key does not exist; n: only if its mod_revision is n.
    if_revision: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteCommand:
    key: bytes
    if_revision: int | None = None


Command = PutCommand | DeleteCommand


def encode_command(command: Command) -> bytes:
    """The bytes to propose for ``command`` (no limits checked; see ``encode_put``)."""
    match command:
        case PutCommand(key, value, if_revision):
            return cbor2.dumps([COMMAND_VERSION, _OP_PUT, key, value, if_revision])
        case DeleteCommand(key, if_revision):
            return cbor2.dumps([COMMAND_VERSION, _OP_DELETE, key, if_revision])


def encode_put(
    key: bytes,
    value: bytes,
    *,
    if_revision: int | None = None,
    max_key_bytes: int = DEFAULT_MAX_KEY_BYTES,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> bytes:
    """A checked put command, ready to propose.

    >>> decode_command(encode_put(b"k", b"v", if_revision=0))
    PutCommand(key=b'k', value=b'v', if_revision=0)
    """
    check_key(key, max_key_bytes)
    if not isinstance(value, bytes):
        raise TypeError(f"a value must be bytes, not {type(value).__name__}")
    check_value_size(len(value), max_value_bytes)
    _check_if_revision(if_revision)
    return encode_command(PutCommand(key, value, if_revision))


def encode_delete(
    key: bytes, *, if_revision: int | None = None, max_key_bytes: int = DEFAULT_MAX_KEY_BYTES
) -> bytes:
    """A checked delete command, ready to propose."""
    check_key(key, max_key_bytes)
    _check_if_revision(if_revision)
    return encode_command(DeleteCommand(key, if_revision))


class _BadCommand(ValueError):
    pass


def decode_command(data: bytes) -> Command:
    """The command in ``data``; ``ValueError`` if it is not exactly a well-formed command."""
    stream = io.BytesIO(data)
    try:
        item = cbor2.CBORDecoder(stream, max_depth=4).decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _BadCommand(f"undecodable CBOR: {exc}") from None
    if stream.tell() != len(data):
        raise _BadCommand(f"{len(data) - stream.tell()} trailing bytes after the command")
    if type(item) is not list or len(item) < 2:
        raise _BadCommand("a command must be an array [version, op, ...]")
    version, op, *args = item
    if type(version) is not int or version != COMMAND_VERSION:
        raise _BadCommand(f"unsupported command version {version!r:.20}")
    if type(op) is int and op == _OP_PUT and len(args) == 3:
        key, value, if_revision = args
        if type(value) is not bytes:
            raise _BadCommand("a put's value must be a byte string")
        return PutCommand(_decode_key(key), value, _decode_if_revision(if_revision))
    if type(op) is int and op == _OP_DELETE and len(args) == 2:
        key, if_revision = args
        return DeleteCommand(_decode_key(key), _decode_if_revision(if_revision))
    raise _BadCommand(f"unknown operation {op!r:.20} with {len(args)} arguments")


def _decode_key(v: Any) -> bytes:
    if type(v) is not bytes or not v:
        raise _BadCommand("a key must be a non-empty byte string")
    return v


def _decode_if_revision(v: Any) -> int | None:
    if v is None or (type(v) is int and 0 <= v <= _MAX_INT):
        return v
    raise _BadCommand(f"bad if_revision {v!r:.20}")


# -- values and results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int  # the revision of the put that created the key
    mod_revision: int  # the revision of the last put to it
    version: int  # puts since creation: 1 for a new key


# How the store keeps a key's KeyValue: (value, create_revision, mod_revision, version).
_Record = tuple[bytes, int, int, int]


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


# -- the state machine ---------------------------------------------------------------------------


class KVStateMachine:
    """The replicated key-value map.

    >>> kv = KVStateMachine()
    >>> kv.apply(1, encode_put(b"a", b"1"))
    PutResult(revision=1, prev=None)
    >>> kv.apply(2, encode_put(b"a", b"2", if_revision=7))
    CompareFailed(key=b'a', expected=7, mod_revision=1, revision=1)
    >>> kv.get(b"a")
    KeyValue(key=b'a', value=b'1', create_revision=1, mod_revision=1, version=1)
    """

    def __init__(self) -> None:
        # Invariant: _keys is sorted, without duplicates, and holds exactly the keys of _data.
        # Values are plain tuples of bytes and ints: the garbage collector stops tracking those,
        # so a full collection does not walk the whole store (42 ms for 100 000 keys as objects,
        # under 1 ms as tuples). KeyValue objects are made when a key is read.
        self._data: dict[bytes, _Record] = {}
        self._keys = SortedKeys()
        # Invariant: _revision >= every mod_revision in _data.
        self._revision = 0
        # The index of the last entry given to apply() (or of the restored snapshot).
        self.applied_index = 0

    # -- write side --

    def apply(self, index: int, command: bytes) -> ApplyResult | None:
        """Apply the committed entry at ``index``. ``None`` for an empty entry (a no-op).

        Raises ``ValueError`` only for local misuse: an index at or below ``applied_index``.
        """
        if index <= self.applied_index:
            raise ValueError(
                f"entry {index} applied out of order (applied_index is {self.applied_index})"
            )
        self.applied_index = index
        if not command:
            return None
        try:
            cmd = decode_command(command)
        except _BadCommand as exc:
            return InvalidCommand(str(exc), self._revision)
        match cmd:
            case PutCommand(key, value, if_revision):
                return self._put(key, value, if_revision)
            case DeleteCommand(key, if_revision):
                return self._delete(key, if_revision)

    def _put(self, key: bytes, value: bytes, if_revision: int | None) -> PutResult | CompareFailed:
        prev = self.get(key)
        if if_revision is not None and (prev.mod_revision if prev else 0) != if_revision:
            return self._compare_failed(key, if_revision, prev)
        rev = self._revision = self._revision + 1
        if prev is None:
            self._data[key] = (value, rev, rev, 1)
            self._keys.add(key)
        else:
            self._data[key] = (value, prev.create_revision, rev, prev.version + 1)
        return PutResult(rev, prev)

    def _delete(self, key: bytes, if_revision: int | None) -> DeleteResult | CompareFailed:
        prev = self.get(key)
        if if_revision is not None and (prev.mod_revision if prev else 0) != if_revision:
            return self._compare_failed(key, if_revision, prev)
        if prev is None:
            return DeleteResult(self._revision, None)
        self._revision += 1
        del self._data[key]
        self._keys.remove(key)
        return DeleteResult(self._revision, prev)

    def _compare_failed(self, key: bytes, expected: int, prev: KeyValue | None) -> CompareFailed:
        return CompareFailed(key, expected, prev.mod_revision if prev else 0, self._revision)

    # -- read side --

    @property
    def revision(self) -> int:
        return self._revision

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, key: bytes) -> KeyValue | None:
        record = self._data.get(key)
        return None if record is None else KeyValue(key, *record)

    def range(
        self, prefix: bytes = b"", *, after: bytes | None = None, limit: int | None = None
    ) -> RangeResult:
        """Keys starting with ``prefix``, ascending, strictly after ``after`` if given (paging).

        At most ``limit`` of them (all when None); ``more`` tells whether others matched.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        if after is not None and after >= prefix:
            keys = self._keys.iter_from(after, inclusive=False)
        else:
            keys = self._keys.iter_from(prefix)
        out: list[KeyValue] = []
        data = self._data
        more = False
        for key in keys:
            if not key.startswith(prefix):
                break
            if limit is not None and len(out) == limit:
                more = True
                break
            out.append(KeyValue(key, *data[key]))
        return RangeResult(tuple(out), more, self._revision)

    # -- snapshots --

    def snapshot(self) -> bytes:
        """The whole state as bytes (see ``snapshot_chunks`` to stream it instead)."""
        buf = io.BytesIO()
        for chunk in self.snapshot_chunks():
            buf.write(chunk)
        return buf.getvalue()  # no copy: BytesIO hands over its buffer

    def snapshot_chunks(self, chunk_bytes: int = 64 * 1024) -> Iterator[bytes]:
        """The snapshot as a stream of chunks of about ``chunk_bytes`` each.

        The chunks are of the state at the time of this call even if ``apply`` runs while they
        are consumed: it takes a shallow copy of the index (references, not values).
        """
        data = self._data.copy()
        keys = self._keys.copy()
        header = [SNAPSHOT_MAGIC, SNAPSHOT_VERSION, self._revision, self.applied_index, len(keys)]
        return self._chunks(header, keys, data, chunk_bytes)

    @staticmethod
    def _chunks(
        header: list[Any], keys: SortedKeys, data: dict[bytes, _Record], chunk_bytes: int
    ) -> Iterator[bytes]:
        parts = [cbor2.dumps(header)]
        size = len(parts[0])
        for key in keys:
            record = cbor2.dumps([key, *data[key]])
            parts.append(record)
            size += len(record)
            if size >= chunk_bytes:
                yield b"".join(parts)
                parts.clear()
                size = 0
        if parts:
            yield b"".join(parts)

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the snapshot in ``data``; ``CorruptSnapshot`` if bad."""
        self.restore_from(io.BytesIO(data))

    def restore_from(self, stream: IO[bytes]) -> None:
        """Like ``restore``, reading the snapshot from a binary stream, one record at a time.

        All or nothing: on ``CorruptSnapshot`` the state is unchanged.
        """
        if not isinstance(stream, io.BufferedIOBase):
            # cbor2 takes a short read for the end of the data; a buffered reader never returns one.
            stream = io.BufferedReader(_RawReader(stream))
        decoder = cbor2.CBORDecoder(stream, max_depth=4)
        try:
            revision, applied_index, count = _read_header(decoder.decode())
            data: dict[bytes, _Record] = {}
            keys: list[bytes] = []
            for _ in range(count):
                key, record = _read_record(decoder.decode(), revision)
                if keys and key <= keys[-1]:
                    raise CorruptSnapshot("snapshot keys are not in strictly ascending order")
                keys.append(key)
                data[key] = record
            try:
                decoder.decode()
            except cbor2.CBORDecodeEOF:
                pass
            else:
                raise CorruptSnapshot("trailing data after the last snapshot record")
        except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            raise CorruptSnapshot(f"undecodable snapshot: {exc}") from None
        self._data, self._keys = data, SortedKeys.from_sorted(keys)
        self._revision, self.applied_index = revision, applied_index


class _RawReader(io.RawIOBase):
    """Any readable binary stream as a raw stream, for ``io.BufferedReader``."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _snapshot_int(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v <= _MAX_INT:
        raise CorruptSnapshot(f"bad {what} in snapshot: {v!r:.40}")
    return v


def _read_header(v: Any) -> tuple[int, int, int]:
    if type(v) is not list or len(v) != 5 or v[0] != SNAPSHOT_MAGIC:
        raise CorruptSnapshot("not a raftkv key-value snapshot")
    if v[1] != SNAPSHOT_VERSION:
        raise CorruptSnapshot(f"unsupported snapshot version {v[1]!r:.20}")
    return (
        _snapshot_int(v[2], "revision"),
        _snapshot_int(v[3], "applied index"),
        _snapshot_int(v[4], "record count"),
    )


def _read_record(v: Any, revision: int) -> tuple[bytes, _Record]:
    if type(v) is not list or len(v) != 5:
        raise CorruptSnapshot("a snapshot record must be an array of 5 items")
    key, value, create_rev, mod_rev, version = v
    if type(key) is not bytes or not key or type(value) is not bytes:
        raise CorruptSnapshot("a snapshot record needs a non-empty key and a value, as bytes")
    create_rev = _snapshot_int(create_rev, "create_revision")
    mod_rev = _snapshot_int(mod_rev, "mod_revision")
    version = _snapshot_int(version, "version")
    if not (1 <= create_rev <= mod_rev <= revision and 1 <= version <= mod_rev - create_rev + 1):
        raise CorruptSnapshot(f"inconsistent revisions for key {key!r:.40} in snapshot")
    return key, (value, create_rev, mod_rev, version)
