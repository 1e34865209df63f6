"""``KVStateMachine``: the replicated key-value store with its revision history. Pure: no I/O.

Every replica applies the same committed commands in the same order and must end in the same
state with the same results. Hence ``apply`` never checks anything a node can configure (limits
are checked before a command is proposed), and a command it cannot decode becomes an
``InvalidCommand`` result, never an exception: a bad entry in the log must not stop every node.

Revisions work as in etcd. Every command that changes something makes one revision (all the
changes of a transaction, or of a prefix delete, share it); a command that changes nothing makes
none. Each key records the revision that created it, the one that last modified it and its
``version`` (modifications since creation). An absent key's modification revision is 0, so a
compare-and-swap with ``if_revision=0`` means "create only". The history since the compaction
point can be read at any revision (``revision=``) and watched (``changes_since``); compaction
goes through the log, so every replica forgets the same history at the same revision.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import replace
from typing import IO

from ._access import change_auth, needs_of
from ._auth import AuthState, Verdict
from ._auth_commands import AuthCommand
from ._commands import (
    AsUser,
    BadCommand,
    Command,
    CompactCommand,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteCommand,
    DeletePrefixCommand,
    LeaseCheckpointCommand,
    LeaseGrantCommand,
    LeaseRevokeCommand,
    PutCommand,
    RangeOp,
    TxnCommand,
    TxnOp,
    decode_command,
)
from ._history import LEASE, VALUE, Event, History, Record
from ._leases import LeaseInfo, LeaseTable
from ._results import (
    AccessRefused,
    ApplyResult,
    AuthChanged,
    CompactRefused,
    CompactResult,
    CompareFailed,
    DeletePrefixResult,
    DeleteResult,
    InvalidCommand,
    KeyValue,
    LeaseExists,
    LeaseGranted,
    LeaseNotFound,
    LeaseResult,
    LeaseRevoked,
    LeasesCheckpointed,
    PutResult,
    RangeResult,
    TxnResponse,
    TxnResult,
    WatchBatch,
    WatchEvent,
)
from ._snapshot import SnapshotState, read_snapshot, read_snapshot_steps, snapshot_chunks

__all__ = ["KVStateMachine"]


def _kv(key: bytes, record: Record) -> KeyValue:
    value, create, mod, version, lease = record
    return KeyValue(key, value or b"", create, mod, version, lease)


class _Revision:
    """The writes of one command: they share the revision after the store's current one, and
    keep the lease table's key sets in step."""

    __slots__ = ("changed", "history", "leases", "rev")

    def __init__(self, history: History, leases: LeaseTable) -> None:
        self.history = history
        self.leases = leases
        self.rev = history.revision + 1
        self.changed: list[bytes] = []

    def put(self, key: bytes, value: bytes, lease: int) -> PutResult:
        prev = self._put(key, value, lease)
        return PutResult(self.rev, None if prev is None else _kv(key, prev))

    def put_all(self, puts: Sequence[PutCommand]) -> list[PutResult]:
        """``put`` each of ``puts`` (distinct keys, as in a transaction) in one loop; the keys
        new to the store share one result."""
        write, rev = self._put, self.rev
        fresh = PutResult(rev, None)
        results = []
        for op in puts:
            prev = write(op.key, op.value, op.lease)
            results.append(fresh if prev is None else PutResult(rev, _kv(op.key, prev)))
        return results

    def _put(self, key: bytes, value: bytes, lease: int) -> Record | None:
        """Write ``key`` at this revision; the live version it replaced."""
        prev = self.history.put(key, value, lease, self.rev)
        self.leases.attach(key, prev[LEASE] if prev else 0, lease)
        self.changed.append(key)
        return prev

    def delete(self, key: bytes) -> KeyValue | None:
        prev = self.history.delete(key, self.rev)
        if prev is None:
            return None
        self.leases.attach(key, prev[LEASE], 0)
        self.changed.append(key)
        return _kv(key, prev)

    @property
    def revision(self) -> int:
        """The store's revision once these writes are committed."""
        return self.rev if self.changed else self.history.revision


class KVStateMachine:
    """The replicated key-value store.

    >>> from raftkv.kv import encode_put
    >>> kv = KVStateMachine()
    >>> kv.apply(1, encode_put(b"a", b"1"))
    PutResult(revision=1, prev=None)
    >>> kv.apply(2, encode_put(b"a", b"2", if_revision=7))
    CompareFailed(key=b'a', expected=7, mod_revision=1, revision=1)
    >>> kv.get(b"a")
    KeyValue(key=b'a', value=b'1', create_revision=1, mod_revision=1, version=1, lease=0)
    """

    def __init__(self) -> None:
        self._history = History()
        self._leases = LeaseTable()
        self._auth = AuthState()
        # The index of the last entry given to apply() (or of the restored snapshot).
        self.applied_index = 0
        # Told of every new revision (after it is committed) and of every restore.
        self._on_revision: list[Callable[[int], None]] = []
        self._on_restore: list[Callable[[], None]] = []

    def observe(
        self, on_revision: Callable[[int], None], on_restore: Callable[[], None]
    ) -> Callable[[], None]:
        """Call ``on_revision(rev)`` after each new revision and ``on_restore()`` after a
        snapshot replaced the state; returns a function that stops it. The callbacks run inside
        ``apply`` and must not raise."""
        self._on_revision.append(on_revision)
        self._on_restore.append(on_restore)

        def stop() -> None:
            self._on_revision.remove(on_revision)
            self._on_restore.remove(on_restore)

        return stop

    # -- write side ------------------------------------------------------------------------------

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
            return InvalidCommand(str(exc), self._history.revision)
        if isinstance(cmd, AsUser):
            refused = self._refusal(cmd.user, cmd.command)
            if refused is not None:
                return refused
            cmd = cmd.command
        if isinstance(cmd, AuthCommand):
            changed = change_auth(self._auth, cmd)
            if isinstance(changed, AuthChanged):
                return replace(changed, revision=self._history.revision)
            return changed
        if isinstance(cmd, CompactCommand):
            return self._compact(cmd.revision)
        if isinstance(cmd, LeaseGrantCommand | LeaseCheckpointCommand):
            return self._lease(cmd)
        writes = _Revision(self._history, self._leases)
        result = self._run(cmd, writes)
        if writes.changed:
            self._history.commit(writes.rev, tuple(writes.changed))
            for notify in self._on_revision:
                notify(writes.rev)
        return result

    def _refusal(self, user: str | None, cmd: Command) -> AccessRefused | None:
        """Refuse a client's command the auth state in force does not allow: judged here, at
        apply, every replica refuses the same commands whatever its edge saw."""
        if not self._auth.enabled:
            return None  # everything is allowed: what the command needs does not matter
        verdict = self._auth.verdict(user, needs_of(cmd, self.lease_keys))
        if verdict is Verdict.ALLOWED:
            return None
        return AccessRefused(user, verdict is Verdict.DENIED, self._history.revision)

    def _run(
        self,
        cmd: PutCommand | DeleteCommand | DeletePrefixCommand | TxnCommand | LeaseRevokeCommand,
        writes: _Revision,
    ) -> ApplyResult:
        match cmd:
            case PutCommand(key, value, if_revision, lease):
                if lease and lease not in self._leases:
                    return LeaseNotFound(lease, self._history.revision)
                return self._check_condition(key, if_revision) or writes.put(key, value, lease)
            case DeleteCommand(key, if_revision):
                return self._check_condition(key, if_revision) or self._delete(key, writes)
            case DeletePrefixCommand(prefix):
                return self._delete_prefix(prefix, writes)
            case LeaseRevokeCommand(lease):
                keys = self._leases.revoke(lease)
                if keys is None:
                    return LeaseNotFound(lease, self._history.revision)
                for key in keys:
                    writes.delete(key)
                return LeaseRevoked(lease, writes.revision, len(keys))
            case TxnCommand(compares, success, failure):
                succeeded = all(self._holds(c) for c in compares)
                ops = success if succeeded else failure
                unknown = self._unknown_lease(ops)
                if unknown:  # the transaction fails whole, as etcd's
                    return LeaseNotFound(unknown, self._history.revision)
                puts = [op for op in ops if type(op) is PutCommand]
                if len(puts) == len(ops):  # only puts (a bulk load's): in one loop
                    responses: list[TxnResponse] = [*writes.put_all(puts)]
                else:
                    responses = [self._op(op, writes) for op in ops]
                # Every response tells the revision after the whole transaction (a put's
                # already does: it made that revision).
                rev = writes.revision
                return TxnResult(
                    succeeded,
                    rev,
                    tuple(r if r.revision == rev else replace(r, revision=rev) for r in responses),
                )

    def _op(self, op: TxnOp, writes: _Revision) -> TxnResponse:
        match op:
            case PutCommand(key, value, _, lease):
                return writes.put(key, value, lease)
            case DeleteCommand(key):
                return self._delete(key, writes)
            case DeletePrefixCommand(prefix):
                return self._delete_prefix(prefix, writes)
            case RangeOp(key, prefix, limit):
                if prefix:
                    found = self.range(key, limit=limit)
                    return RangeResult(found.kvs, found.more, writes.revision)
                kv = self.get(key)
                return RangeResult(() if kv is None else (kv,), False, writes.revision)

    def _unknown_lease(self, ops: tuple[TxnOp, ...]) -> int:
        for op in ops:
            if isinstance(op, PutCommand) and op.lease and op.lease not in self._leases:
                return op.lease
        return 0

    def _lease(self, cmd: LeaseGrantCommand | LeaseCheckpointCommand) -> LeaseResult:
        if isinstance(cmd, LeaseGrantCommand):
            if not self._leases.grant(cmd.lease, cmd.ttl):
                return LeaseExists(cmd.lease)
            return LeaseGranted(cmd.lease, cmd.ttl)
        for lease, remaining in cmd.remaining:
            self._leases.checkpoint(lease, remaining)
        return LeasesCheckpointed(len(cmd.remaining))

    def _delete(self, key: bytes, writes: _Revision) -> DeleteResult:
        prev = writes.delete(key)
        return DeleteResult(writes.revision, prev)

    def _delete_prefix(self, prefix: bytes, writes: _Revision) -> DeletePrefixResult:
        keys = list(self._live_keys(prefix))
        deleted = tuple(kv for kv in map(writes.delete, keys) if kv is not None)
        return DeletePrefixResult(writes.revision, deleted)

    def _check_condition(self, key: bytes, if_revision: int | None) -> CompareFailed | None:
        if if_revision is None:
            return None
        kv = self.get(key)
        mod = kv.mod_revision if kv else 0
        if mod == if_revision:
            return None
        return CompareFailed(key, if_revision, mod, self._history.revision)

    def _holds(self, c: Compare) -> bool:
        kv = self.get(c.key)
        if c.target is CompareTarget.VALUE:
            if kv is None:
                return False  # as etcd: no value compares true against an absent key
            actual: bytes | int = kv.value
        elif c.target is CompareTarget.VERSION:
            actual = kv.version if kv else 0
        elif c.target is CompareTarget.CREATE_REVISION:
            actual = kv.create_revision if kv else 0
        else:
            actual = kv.mod_revision if kv else 0
        if type(actual) is not type(c.value):
            return False
        match c.op:
            case CompareOp.EQUAL:
                return actual == c.value
            case CompareOp.NOT_EQUAL:
                return actual != c.value
            case CompareOp.LESS:
                return actual < c.value  # type: ignore[operator]
            case CompareOp.GREATER:
                return actual > c.value  # type: ignore[operator]

    def _compact(self, revision: int) -> CompactResult | CompactRefused:
        h = self._history
        if revision > h.revision:
            reason = f"revision {revision} is in the future: the store is at {h.revision}"
            return CompactRefused(revision, reason, h.revision, h.compact_revision)
        if revision <= h.compact_revision:
            reason = f"revision {revision} is compacted already (at {h.compact_revision})"
            return CompactRefused(revision, reason, h.revision, h.compact_revision)
        h.compact(revision)
        return CompactResult(h.revision, h.compact_revision)

    # -- read side -------------------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self._history.revision

    @property
    def compact_revision(self) -> int:
        """The oldest revision that can still be read and watched from."""
        return self._history.compact_revision

    @property
    def retained_revisions(self) -> int:
        """Revisions whose changes the history holds (the cost of the history)."""
        return self._history.retained_revisions

    def __len__(self) -> int:
        return len(self._history)

    def lease(self, lease: int) -> LeaseInfo | None:
        """A lease's granted TTL, checkpointed remaining TTL and attached keys."""
        return self._leases.info(lease)

    def lease_ids(self) -> list[int]:
        return self._leases.ids()

    def lease_keys(self, lease: int) -> tuple[bytes, ...]:
        """The keys attached to ``lease`` now (none for an unknown lease)."""
        info = self._leases.info(lease)
        return () if info is None else tuple(info.keys)

    @property
    def auth(self) -> AuthState:
        """The auth state in force (users, roles, the enabled flag, the token secret). Read it;
        only applied auth commands change it."""
        return self._auth

    def get(self, key: bytes, *, revision: int | None = None) -> KeyValue | None:
        """The key as of ``revision`` (None: now); ``Compacted`` / ``FutureRevision`` for a
        revision that cannot be read."""
        at = None if revision is None else self._history.check_readable(revision)
        record = self._history.get(key, at)
        return None if record is None else _kv(key, record)

    def range(
        self,
        prefix: bytes = b"",
        *,
        after: bytes | None = None,
        limit: int | None = None,
        revision: int | None = None,
    ) -> RangeResult:
        """Keys starting with ``prefix``, ascending, strictly after ``after`` if given (paging),
        as of ``revision`` (None: now). At most ``limit`` of them (all when None); ``more`` tells
        whether others matched."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        at = None if revision is None else self._history.check_readable(revision)
        history = self._history
        if after is not None and after >= prefix:
            keys = history.keys_from(after, inclusive=False)
        else:
            keys = history.keys_from(prefix)
        out: list[KeyValue] = []
        more = False
        for key in keys:
            if not key.startswith(prefix):
                break
            record = history.get(key, at)
            if record is None:
                continue
            if limit is not None and len(out) == limit:
                more = True
                break
            out.append(_kv(key, record))
        return RangeResult(tuple(out), more, history.revision)

    def _live_keys(self, prefix: bytes) -> Iterator[bytes]:
        history = self._history
        for key in history.keys_from(prefix):
            if not key.startswith(prefix):
                return
            if history.get(key) is not None:
                yield key

    def changes_since(self, start: int) -> Iterator[tuple[int, tuple[bytes, ...]]]:
        """``(revision, keys changed)`` for every revision from ``start`` (``batch`` builds its
        events); ``Compacted`` unless ``start`` is after the compaction point (the state at the
        compaction point can be read, its changes are gone)."""
        return self._history.changes(start)

    def keys_changed_at(self, revision: int) -> tuple[bytes, ...]:
        """The keys the newest revision changed (what a watch hub routes)."""
        return self._history.newest_change(revision)

    def batch(self, revision: int, keys: tuple[bytes, ...], *, prev_kv: bool) -> WatchBatch:
        """The events of ``revision`` for ``keys`` (a subset of what it changed, in order)."""
        return self._batch(revision, keys, prev_kv)

    def _batch(self, revision: int, keys: tuple[bytes, ...], prev_kv: bool) -> WatchBatch:
        events = self._history.events(revision, keys)
        return WatchBatch(revision, tuple(_event(e, prev_kv) for e in events))

    # -- snapshots -------------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """The whole state as bytes (see ``snapshot_chunks`` to stream it instead)."""
        buf = io.BytesIO()
        for chunk in self.snapshot_chunks():
            buf.write(chunk)
        return buf.getvalue()  # no copy: BytesIO hands over its buffer

    def snapshot_chunks(self, chunk_bytes: int = 64 * 1024) -> Iterator[bytes]:
        """The snapshot as a stream of chunks of about ``chunk_bytes`` each.

        The chunks are of the state at the time of this call even if ``apply`` runs while they
        are consumed: it takes a view now (references to the immutable versions, not copies).
        """
        view = self._history.view()
        leases = self._leases.records()
        return snapshot_chunks(self.applied_index, view, leases, self._auth.copy(), chunk_bytes)

    def restore(self, data: bytes) -> None:
        """Replace the whole state with the snapshot in ``data``; ``CorruptSnapshot`` if bad."""
        self.restore_from(io.BytesIO(data))

    def restore_from(self, stream: IO[bytes]) -> None:
        """Like ``restore``, reading the snapshot from a binary stream, one record at a time.

        All or nothing: on ``CorruptSnapshot`` the state is unchanged.
        """
        self._install(read_snapshot(stream))

    def restore_steps(self, stream: IO[bytes]) -> Generator[None, None, Callable[[], None]]:
        """``restore_from`` a step at a time, the state left alone meanwhile: each ``next()``
        reads a few hundred records (about a millisecond); the generator returns a function
        that installs what it read, at once. ``CorruptSnapshot`` if it is damaged."""
        state = yield from read_snapshot_steps(stream, records_per_step=500)
        return lambda: self._install(state)

    def _install(self, state: SnapshotState) -> None:
        self._history, self.applied_index = state.history, state.applied_index
        self._leases = state.leases
        self._auth = state.auth
        for notify in self._on_restore:
            notify()


def _event(e: Event, with_prev: bool) -> WatchEvent:
    prev = _kv(e.key, e.prev) if with_prev and e.prev is not None else None
    if e.record[VALUE] is None:
        return WatchEvent("delete", KeyValue(e.key, b"", 0, e.record[2], 0), prev)
    return WatchEvent("put", _kv(e.key, e.record), prev)
