"""``KVStateMachine``: the replicated key-value map. Pure: no I/O.

Every replica applies the same committed commands in the same order and must end in the same
state with the same results. Hence ``apply`` never checks anything a node can configure (limits
are checked before a command is proposed), and a command it cannot decode becomes an
``InvalidCommand`` result, never an exception: a bad entry in the log must not stop every node.

Revisions work as in etcd. ``revision`` counts successful mutations. Each key records the revision
that created it, the one that last modified it and its ``version`` (modifications since creation).
An absent key's modification revision is 0, so a compare-and-swap with ``if_revision=0`` means
"create only", and ``if_revision=n`` means "only if the key was last modified at revision n".
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO

from ._commands import BadCommand, DeleteCommand, PutCommand, decode_command
from ._results import (
    ApplyResult,
    CompareFailed,
    DeleteResult,
    InvalidCommand,
    KeyValue,
    PutResult,
    RangeResult,
)
from ._snapshot import Record, read_snapshot, snapshot_chunks
from ._sortedkeys import SortedKeys

__all__ = ["KVStateMachine"]


class KVStateMachine:
    """The replicated key-value map.

    >>> from raftkv.kv import encode_put
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
        self._data: dict[bytes, Record] = {}
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
        except BadCommand as exc:
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
        return snapshot_chunks(
            self._revision, self.applied_index, self._keys.copy(), self._data.copy(), chunk_bytes
        )

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the snapshot in ``data``; ``CorruptSnapshot`` if bad."""
        self.restore_from(io.BytesIO(data))

    def restore_from(self, stream: IO[bytes]) -> None:
        """Like ``restore``, reading the snapshot from a binary stream, one record at a time.

        All or nothing: on ``CorruptSnapshot`` the state is unchanged.
        """
        state = read_snapshot(stream)
        self._data, self._keys = state.data, state.keys
        self._revision, self.applied_index = state.revision, state.applied_index
