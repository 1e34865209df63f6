"""The key-value store's snapshot format: a CBOR sequence (RFC 8742), written and read one
record at a time, carrying the retained history (so a node restored from a snapshot serves the
same reads at past revisions, and the same watch events, as the node that took it)::

    ["raftkv-kv", 5, revision, applied_index, compact_revision, key_count, change_count,
     lease_count]
    [key, value, create, mod, version, lease, ...]    key_count keys in key order, each key
                                                      either a record of every retained version
                                                      of the key, oldest first (five fields
                                                      each; value null: deleted), or in
    [[key...], [value...], [create...], [mod...],     a block: consecutive keys of one version
     [version...], [lease...]]                        each, a column per field (most keys: one
                                                      decode call for a block, not one a key)
    [revision, key, ...]                              change_count records: the keys each
                                                      retained revision changed, in order
    [lease, ttl, remaining]                           lease_count records, by lease id
    [enabled, secret, auth_revision, user_count, role_count]      the auth section:
    [name, password_hash | null, revision, role, ...]             user_count users, by name
    [name, perm, key, prefix, perm, key, prefix, ...]             role_count roles, by name

Older versions are still read: 4 (no blocks: a record per key), and with auth disabled and no
users or roles, 3 (no auth section), 2 (no leases: its header has no lease_count) and 1 (before
histories: ``[..., 1, revision, applied_index, count]`` and ``[key, value, create, mod,
version]`` records; nothing before its revision is readable). A node of a version before blocks
cannot read a snapshot with them: upgrade the followers before the leader.

Reading is all or nothing and checks every record (types, key order, revision bounds, that the
change index names exactly the versions after the compaction point): ``CorruptSnapshot`` names
what is wrong.
"""

from __future__ import annotations

import io
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, pairwise, repeat
from operator import add, le, lt, sub
from typing import IO, Any, Final

import cbor2

from .._errors import CorruptSnapshot
from ._auth import AuthState, KeyRange, Perm, Permission, Role, User, check_name
from ._history import KEY_CHUNK, LEASE, MOD, VALUE, History, HistoryView, Record
from ._keymap import KeyMap
from ._leases import LeaseTable
from ._limits import MAX_INT

__all__ = ["SnapshotState", "read_snapshot", "read_snapshot_steps", "snapshot_chunks"]

SNAPSHOT_MAGIC: Final = "raftkv-kv"
SNAPSHOT_VERSION: Final = 5
_FIELDS: Final = 5  # fields of one version in a key record


@dataclass(frozen=True, slots=True)
class SnapshotState:
    """A snapshot read back: the store's whole state."""

    applied_index: int
    history: History
    leases: LeaseTable
    auth: AuthState


def snapshot_chunks(
    applied_index: int,
    view: HistoryView,
    leases: list[tuple[int, int, int]],
    auth: AuthState,
    chunk_bytes: int,
) -> Iterator[bytes]:
    """The snapshot of ``view`` as chunks of about ``chunk_bytes`` each, serialized lazily as
    they are consumed (``view`` reads the live history; closing this iterator closes it). While
    the view settles its key count, and for keys it skips (created since), chunks are empty:
    steps, so that the node goes on."""
    try:
        for _ in view.settle_count():
            yield b""
        header = [
            SNAPSHOT_MAGIC,
            SNAPSHOT_VERSION,
            view.revision,
            applied_index,
            view.compact_revision,
            view.key_count,
            len(view.changes),
            len(leases),
        ]
        chunks = _Chunks(chunk_bytes, cbor2.dumps(header))
        for part in view.batches():
            took = False
            for key, versions in part:
                if len(versions) == 1 and versions[0][VALUE] is not None:
                    full = chunks.add_plain(key, versions[0])
                else:
                    full = chunks.add([key, *(field for record in versions for field in record)])
                if full:
                    took = True
                    yield chunks.take()
            if not took:
                yield b""  # a step all the same: a batch of keys the view skips costs time too
        for item in _after_keys(view, leases, auth):
            if chunks.add(item):
                yield chunks.take()
        last = chunks.take()
        if last:
            yield last
    finally:
        view.close()


# Bytes an item may take beyond its byte strings: five CBOR integers per version and heads.
_RECORD_BOUND = 64


class _Chunks:
    """Snapshot items gathered into chunks of about ``chunk_bytes`` (an item or a key over at
    most); consecutive plain keys (one live version) go into one block, a column per field."""

    def __init__(self, chunk_bytes: int, head: bytes) -> None:
        self._limit = chunk_bytes
        self._head = head  # encoded, for the first chunk
        self._items: list[Any] = []
        self._rows: list[tuple[Any, ...]] = []  # the open block's keys, as rows
        self._estimate = len(head)  # an upper bound of the chunk's encoded size

    def add(self, item: list[Any]) -> bool:
        """Add ``item``; True if the chunk is full."""
        self._close_block()
        self._items.append(item)
        self._estimate += _RECORD_BOUND + sum(len(f) for f in item if type(f) is bytes)
        return self._estimate >= self._limit

    def add_plain(self, key: bytes, record: Record) -> bool:
        """Add a key of one live version to the open block; True if the chunk is full."""
        self._rows.append((key, *record))
        self._estimate += _RECORD_BOUND + len(key) + len(record[VALUE] or b"")
        return self._estimate >= self._limit

    def take(self) -> bytes:
        """The chunk so far, encoded; the next one starts empty."""
        self._close_block()
        chunk = self._head + _sequence(self._items)
        self._head, self._items, self._estimate = b"", [], 0
        return chunk

    def _close_block(self) -> None:
        if self._rows:
            self._items.append(list(zip(*self._rows, strict=True)))
            self._rows = []


def _after_keys(
    view: HistoryView, leases: list[tuple[int, int, int]], auth: AuthState
) -> Iterator[list[Any]]:
    for rev, keys in view.changes:
        yield [rev, *keys]
    for lease in leases:
        yield list(lease)
    yield from _auth_records(auth)


def _sequence(items: list[Any]) -> bytes:
    """The CBOR sequence of ``items``: their array's encoding (one call) without its head."""
    if not items:
        return b""
    n = len(items)
    head = 1 if n < 24 else 2 if n < 1 << 8 else 3 if n < 1 << 16 else 5
    return cbor2.dumps(items)[head:]


def read_snapshot(stream: IO[bytes]) -> SnapshotState:
    """The state in a snapshot read from a binary stream, one record at a time;
    ``CorruptSnapshot`` if it is not exactly a well-formed snapshot."""
    steps = read_snapshot_steps(stream)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            state: SnapshotState = done.value
            return state


def read_snapshot_steps(
    stream: IO[bytes], records_per_step: int = 2000
) -> Generator[None, None, SnapshotState]:
    """``read_snapshot`` a step at a time: each ``next()`` reads about ``records_per_step``
    records; the state is the generator's return value. Nothing changes until it is used."""
    if not isinstance(stream, io.BufferedIOBase):
        # cbor2 takes a short read for the end of the data; a buffered reader never returns one.
        stream = io.BufferedReader(_RawReader(stream))
    decoder = cbor2.CBORDecoder(stream, max_depth=4)
    try:
        state = yield from _read(decoder, records_per_step)
        try:
            decoder.decode()
        except cbor2.CBORDecodeEOF:
            pass
        else:
            raise CorruptSnapshot("trailing data after the last snapshot record")
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise CorruptSnapshot(f"undecodable snapshot: {exc}") from None
    return state


def _read(decoder: cbor2.CBORDecoder, step: int) -> Generator[None, None, SnapshotState]:
    header = decoder.decode()
    if type(header) is not list or len(header) < 2 or header[0] != SNAPSHOT_MAGIC:
        raise CorruptSnapshot("not a raftkv key-value snapshot")
    if header[1] == 1 and len(header) == 5:
        revision, applied, count = (_int(v, what) for v, what in zip(header[2:], _V1, strict=True))
        versions = [_read_v1_record(decoder.decode(), revision) for _ in range(count)]
        _check_key_order(versions)
        history = History.restore(revision, revision, iter(versions), [])
        return SnapshotState(applied, history, LeaseTable(), AuthState())
    if (header[1], len(header)) not in ((2, 7), (3, 8), (4, 8), (SNAPSHOT_VERSION, 8)):
        raise CorruptSnapshot(f"unsupported snapshot version {header[1]!r:.20}")
    revision, applied, compacted, key_count, change_count, *lease_count = (
        _int(v, what) for v, what in zip(header[2:], _V3, strict=False)
    )
    if compacted > revision:
        raise CorruptSnapshot("the compaction point is past the snapshot's revision")
    keys = _KeyRecords(revision, compacted)
    if header[1] == SNAPSHOT_VERSION:
        while keys.count < key_count:
            keys.read_blocks(decoder, key_count, step)
            yield
    else:
        for start in range(0, key_count, step):
            keys.read(decoder, min(step, key_count - start))
            yield
    # The change records too, a step at a time: a million keys' changes take a third of a
    # second to read, too long for one step.
    changes: list[tuple[int, tuple[bytes, ...]]] = []
    named = 0  # the digest of the versions they name
    for start in range(0, change_count, _CHANGES_PER_STEP):
        n = min(_CHANGES_PER_STEP, change_count - start)
        read = [_read_change(decoder.decode(), compacted, revision) for _ in range(n)]
        named += sum(_digest(names, repeat(rev)) for rev, names in read)
        changes += read
        yield
    if any(a[0] >= b[0] for a, b in pairwise(changes)):
        raise CorruptSnapshot("snapshot changes are not in strictly ascending revision order")
    if named != keys.digest:
        raise CorruptSnapshot(
            "the change index does not name exactly the versions after the compaction point"
            " (a change names no version, or twice, or a version has no change)"
        )
    leases = [_read_lease(decoder.decode()) for _ in range(lease_count[0] if lease_count else 0)]
    history = History.restored(revision, compacted, keys, changes)
    yield
    auth = _read_auth(decoder) if header[1] >= 4 else AuthState()
    return SnapshotState(applied, history, _lease_table(leases, keys.attached), auth)


def _auth_records(auth: AuthState) -> Iterator[list[Any]]:
    users, roles = sorted(auth.users.items()), sorted(auth.roles.items())
    yield [auth.enabled, auth.secret, auth.revision, len(users), len(roles)]
    for name, user in users:
        yield [name, user.password, user.revision, *user.roles]
    for name, role in roles:
        perms = role.permissions
        yield [name, *(f for p in perms for f in (int(p.perm), p.range.key, p.range.prefix))]


def _read_auth(decoder: cbor2.CBORDecoder) -> AuthState:
    head = decoder.decode()
    if type(head) is not list or len(head) != 5 or type(head[0]) is not bool:
        raise CorruptSnapshot("the auth section must be [enabled, secret, revision, users, roles]")
    enabled, secret = head[0], head[1]
    revision, user_count, role_count = (_int(v, "auth field") for v in head[2:])
    if type(secret) is not bytes or enabled != bool(secret):
        raise CorruptSnapshot("auth is enabled in the snapshot exactly when it has a secret")
    users = [_read_user(decoder.decode(), revision) for _ in range(user_count)]
    roles = [_read_role(decoder.decode()) for _ in range(role_count)]
    names = ([u.name for u in users], [r.name for r in roles])
    for sorted_names in names:
        if any(a >= b for a, b in pairwise(sorted_names)):
            raise CorruptSnapshot("snapshot users and roles must be in strictly ascending order")
    role_names = {r.name for r in roles}
    if any(set(u.roles) - role_names for u in users):
        raise CorruptSnapshot("a snapshot user holds a role the snapshot does not have")
    state = AuthState(enabled, secret, revision, {u.name: u for u in users})
    state.roles = {r.name: r for r in roles}
    if enabled and state.can_enable() is not None:
        raise CorruptSnapshot("auth is enabled in the snapshot without a root user")
    return state


def _read_user(v: Any, auth_revision: int) -> User:
    if type(v) is not list or len(v) < 3 or not (v[1] is None or type(v[1]) is str):
        raise CorruptSnapshot("a user record must be [name, password_hash | null, revision, ...]")
    try:
        name = check_name(v[0], "user")
        roles = tuple(check_name(r, "role") for r in v[3:])
    except ValueError as exc:
        raise CorruptSnapshot(f"bad user record in snapshot: {exc}") from None
    revision = _int(v[2], "user revision")
    if revision > auth_revision or list(roles) != sorted(set(roles)):
        raise CorruptSnapshot(f"inconsistent user record {name!r:.40} in snapshot")
    return User(name, v[1], roles, revision)


def _read_role(v: Any) -> Role:
    if type(v) is not list or len(v) < 1 or (len(v) - 1) % 3:
        raise CorruptSnapshot("a role record must be [name, (perm, key, prefix)...]")
    try:
        name = check_name(v[0], "role")
    except ValueError as exc:
        raise CorruptSnapshot(f"bad role record in snapshot: {exc}") from None
    perms = []
    for perm, key, prefix in (v[i : i + 3] for i in range(1, len(v), 3)):
        if perm not in (1, 2, 3) or type(perm) is not int or type(key) is not bytes:
            raise CorruptSnapshot(f"bad permission of role {name!r:.40} in snapshot")
        if type(prefix) is not bool or (not key and not prefix):
            raise CorruptSnapshot(f"bad permission range of role {name!r:.40} in snapshot")
        perms.append(Permission(Perm(perm), KeyRange(key, prefix)))
    return Role(name, tuple(perms))


# Records checked together. Few enough that the garbage collector seldom finds many of them
# alive (each one it finds is promoted, and the promoted bring on full collections, which walk
# the whole state read so far); enough to make the checks' calls cheap per record.
_BATCH = 128


class _KeyRecords:
    """The key records of a snapshot as they are read: checked, into the history's indexes.

    Records are decoded a batch at a time. Most keys have one live version without a lease
    history: a batch made only of those is checked a field at a time across the batch, by
    builtins over its columns (``operator``'s functions: a third of what the types' own
    methods cost), instead of by Python code per record; a batch with anything
    else takes ``_add_checked``, record by record, which names what is wrong."""

    def __init__(self, revision: int, compacted: int) -> None:
        self.revision = revision
        self.compacted = compacted
        # The digest of the versions after the compaction point, which the change index must
        # name, each once (checked against the change records' own: no lookup per reference).
        self.digest = 0
        self.latest: KeyMap[Record] = KeyMap()
        self.older: KeyMap[list[Record]] = KeyMap()
        # The keys, ascending, in the lists a SortedList keeps (``sorted_keys``): built as they
        # are read, not sorted and cut up in one step at the end (a million keys: 0.12 s).
        self.key_chunks: list[list[bytes]] = []
        self.count = 0
        self.attached: list[tuple[bytes, int]] = []  # (key, lease) of live keys with a lease
        self.live = 0
        self._last = b""

    def read(self, decoder: cbor2.CBORDecoder, count: int) -> None:
        """Read ``count`` key records (a version before blocks)."""
        decode = decoder.decode
        for start in range(0, count, _BATCH):
            batch = [decode() for _ in range(min(_BATCH, count - start))]
            if not self._add_plain(batch):
                for v in batch:
                    self._add_checked(v)

    def read_blocks(self, decoder: cbor2.CBORDecoder, total: int, step: int) -> None:
        """Read key records and blocks until about ``step`` more keys are read, or ``total``."""
        goal = min(total, self.count + step)
        while self.count < goal:
            v = decoder.decode()
            if type(v) is list and len(v) == 6 and type(v[0]) is list:
                self._add_block(v, total - self.count)
            else:
                self._add_checked(v)

    def _add_block(self, columns: list[Any], room: int) -> None:
        n = len(columns[0])
        if set(map(type, columns)) != {list} or set(map(len, columns)) != {n}:
            raise CorruptSnapshot("a block of keys must be six columns of the same length")
        if not 0 < n <= room:
            raise CorruptSnapshot("a block holds more keys than the snapshot has, or none")
        if not self._add_columns(columns):
            for row in zip(*columns, strict=True):
                self._add_checked(list(row))

    def _add_plain(self, batch: list[Any]) -> bool:
        """Add ``batch`` if every record in it is a plain one (a key, its one live version,
        six fields) in key order after the last; False (nothing added) otherwise."""
        if not batch or set(map(type, batch)) != {list} or set(map(len, batch)) != {6}:
            return False
        return self._add_columns(list(zip(*batch, strict=True)))

    def _add_columns(self, columns: Sequence[Sequence[Any]]) -> bool:
        """Add the plain keys of these columns (one live version each) if they all are, in key
        order after the last; False (nothing added) otherwise."""
        keys, values, creates, mods, versions, leases = columns
        if (
            set(map(type, keys)) != {bytes}
            or set(map(type, values)) != {bytes}
            or set(map(type, (*creates, *mods, *versions, *leases))) != {int}
            or not self._last < keys[0]
            or not all(map(lt, keys, keys[1:]))
            or min(creates) < 1
            or max(mods) > self.revision
            or not all(map(le, creates, mods))
            or min(versions) < 1
            # version <= mod - create + 1
            or max(map(sub, map(add, versions, creates), mods)) > 1
            or min(leases) < 0
            or max(leases) > MAX_INT
        ):
            return False
        # One int object for both revisions when they are equal, as apply makes it.
        if creates == mods:  # most often (every key written once since): compared in C
            shared = creates
        else:
            shared = [c if m == c else m for c, m in zip(creates, mods, strict=True)]
        compacted = self.compacted
        if min(mods) > compacted:  # every key written since the compaction point
            self.digest += _digest(keys, mods)
        elif max(mods) > compacted:
            after = [mod > compacted for mod in mods]
            self.digest += _digest(compress(keys, after), compress(mods, after))
        records = zip(values, creates, shared, versions, leases, strict=True)
        self.latest.put_many(keys, records)
        self._append_keys(keys)
        self._last = keys[-1]
        self.live += len(keys)
        if max(leases):
            self.attached.extend((k, lease) for k, lease in zip(keys, leases, strict=True) if lease)
        return True

    def _append_keys(self, keys: Sequence[bytes]) -> None:
        chunks = self.key_chunks
        start = 0
        if chunks and len(chunks[-1]) < KEY_CHUNK:
            start = KEY_CHUNK - len(chunks[-1])
            chunks[-1].extend(keys[:start])
        chunks.extend(list(keys[i : i + KEY_CHUNK]) for i in range(start, len(keys), KEY_CHUNK))
        self.count += len(keys)

    def _add_checked(self, v: Any) -> None:
        """Add one record of any shape, checked on its own."""
        key, records = _read_key_record(v, self.revision)
        if key <= self._last:
            raise CorruptSnapshot("snapshot keys are not in strictly ascending order")
        self.latest[key] = records[-1]
        self.digest += _digest(repeat(key), (r[MOD] for r in records if r[MOD] > self.compacted))
        if len(records) > 1:
            self.older[key] = records[:-1]
        self._append_keys((key,))
        self._last = key
        if records[-1][VALUE] is not None:
            self.live += 1
            if records[-1][LEASE]:
                self.attached.append((key, records[-1][LEASE]))


_V1 = ("revision", "applied index", "record count")
_V3 = (
    "revision",
    "applied index",
    "compaction revision",
    "key count",
    "change count",
    "lease count",
)


def _int(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v <= MAX_INT:
        raise CorruptSnapshot(f"bad {what} in snapshot: {v!r:.40}")
    return v


def _key(v: Any) -> bytes:
    if type(v) is not bytes or not v:
        raise CorruptSnapshot("a snapshot record needs a non-empty key, as bytes")
    return v


def _version(fields: list[Any], key: bytes, revision: int) -> Record:
    value, create, mod, version, lease = fields
    create, mod = _int(create, "create_revision"), _int(mod, "mod_revision")
    version, lease = _int(version, "version"), _int(lease, "lease")
    if value is None:
        if (create, version, lease) != (0, 0, 0) or not 1 <= mod <= revision:
            raise CorruptSnapshot(f"bad deletion record for key {key!r:.40} in snapshot")
        return (None, 0, mod, 0, 0)
    if type(value) is not bytes:
        raise CorruptSnapshot(f"a value must be bytes (key {key!r:.40})")
    if not (1 <= create <= mod <= revision and 1 <= version <= mod - create + 1):
        raise CorruptSnapshot(f"inconsistent revisions for key {key!r:.40} in snapshot")
    return (value, create, mod, version, lease)


def _read_key_record(v: Any, revision: int) -> tuple[bytes, list[Record]]:
    if type(v) is not list or len(v) < 1 + _FIELDS or (len(v) - 1) % _FIELDS:
        raise CorruptSnapshot("a key record must hold a key and whole versions of five fields")
    key = _key(v[0])
    records = [_version(v[i : i + _FIELDS], key, revision) for i in range(1, len(v), _FIELDS)]
    if any(a[2] >= b[2] for a, b in pairwise(records)):
        raise CorruptSnapshot(f"the versions of key {key!r:.40} are not in revision order")
    return key, records


def _read_v1_record(v: Any, revision: int) -> tuple[bytes, list[Record]]:
    if type(v) is not list or len(v) != 5:
        raise CorruptSnapshot("a snapshot record must be an array of 5 items")
    key = _key(v[0])
    if type(v[1]) is not bytes:
        raise CorruptSnapshot("a snapshot record needs a non-empty key and a value, as bytes")
    return key, [_version([*v[1:], 0], key, revision)]


def _read_change(v: Any, compacted: int, revision: int) -> tuple[int, tuple[bytes, ...]]:
    if type(v) is not list or len(v) < 2:
        raise CorruptSnapshot("a change record must hold a revision and the keys it changed")
    rev = _int(v[0], "change revision")
    if not compacted < rev <= revision:
        raise CorruptSnapshot(f"change at revision {rev} outside the retained history")
    keys = tuple(v[1:])
    if set(map(type, keys)) != {bytes} or not all(keys):
        _key(next(k for k in keys if type(k) is not bytes or not k))  # names what is wrong
    return rev, keys


def _read_lease(v: Any) -> tuple[int, int, int]:
    if type(v) is not list or len(v) != 3:
        raise CorruptSnapshot("a lease record must be [lease, ttl, remaining]")
    lease, ttl, remaining = (_int(x, "lease field") for x in v)
    if not lease or not ttl:
        raise CorruptSnapshot(f"lease {lease} in snapshot has no id or no TTL")
    return lease, ttl, remaining


def _lease_table(
    leases: list[tuple[int, int, int]], attached: list[tuple[bytes, int]]
) -> LeaseTable:
    if any(a[0] >= b[0] for a, b in pairwise(leases)):
        raise CorruptSnapshot("snapshot leases are not in strictly ascending id order")
    ids = {lease for lease, _, _ in leases}
    for key, lease in attached:
        if lease not in ids:
            raise CorruptSnapshot(f"key {key!r:.40} is attached to lease {lease}, not in snapshot")
    return LeaseTable.restore(leases, iter(attached))


def _check_key_order(versions: list[tuple[bytes, list[Record]]]) -> None:
    if any(a[0] >= b[0] for a, b in pairwise(versions)):
        raise CorruptSnapshot("snapshot keys are not in strictly ascending order")


# Change records read or checked per step (of up to 128 keys each in a bulk load's snapshot).
_CHANGES_PER_STEP = 32


def _digest(keys: Iterable[bytes], revisions: Iterable[int]) -> int:
    """The digest of the versions ``(key, revision)``: the sum of their hashes. A change index
    and the versions it must name have equal digests exactly when they are the same multiset
    (but for a collision of 64-bit hashes: a damaged snapshot goes unnoticed with odds of about
    one in 2**64). Two sums of hashes, computed in C, instead of a lookup per reference."""
    return sum(map(hash, zip(keys, revisions, strict=False)))  # one side may repeat


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
