"""The store with its history, against a plain model: a list of states, one per revision.

Puts, deletes, prefix deletes, transactions and compactions, snapshot/restore at any point;
reads at any revision (retained, compacted or in the future) and the changes between revisions
(what watchers are sent) must be exactly what the model says. A snapshot may also be streamed
while the store keeps changing (it reads the live history): its bytes must be exactly those of
the snapshot taken when it began, and compaction held back meanwhile must happen once it ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sortedcontainers import SortedList

from raftkv.kv import (
    CompactCommand,
    Compacted,
    CompactRefused,
    CompactResult,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteCommand,
    DeletePrefixCommand,
    DeletePrefixResult,
    DeleteResult,
    FutureRevision,
    InvalidCommand,
    KeyValue,
    KVStateMachine,
    LeaseCheckpointCommand,
    LeaseExists,
    LeaseGrantCommand,
    LeaseGranted,
    LeaseInfo,
    LeaseNotFound,
    LeaseRevokeCommand,
    LeaseRevoked,
    LeasesCheckpointed,
    PutCommand,
    PutResult,
    RangeOp,
    RangeResult,
    TxnCommand,
    TxnOp,
    TxnResult,
    WatchBatch,
    WatchEvent,
    _history,
    encode_command,
    encode_put,
)
from raftkv.kv._history import KEY_CHUNK, _compacted, sorted_keys

keys = st.sampled_from([b"a", b"ab", b"abc", b"b", b"b/1", b"b/2", b"\xff"])
prefixes = st.sampled_from([b"", b"a", b"ab", b"b", b"b/", b"\xff", b"c"])
values = st.binary(max_size=4)

# The model's state at one revision: key -> (value, create_revision, mod_revision, version).
State = dict[bytes, tuple[bytes, int, int, int, int]]  # ... , lease
lease_ids = st.sampled_from([0, 1, 2, 3])


def _kv(key: bytes, v: tuple[bytes, int, int, int, int]) -> KeyValue:
    return KeyValue(key, *v)


compares = st.builds(
    lambda key, target, op, vbytes, vint: Compare(
        key, target, op, vbytes if target is CompareTarget.VALUE else vint
    ),
    keys,
    st.sampled_from(CompareTarget),
    st.sampled_from(CompareOp),
    values,
    st.integers(0, 12),
)
txn_ops: st.SearchStrategy[TxnOp] = st.one_of(
    st.builds(PutCommand, keys, values, st.none(), lease_ids),
    st.builds(DeleteCommand, keys),
    st.builds(DeletePrefixCommand, prefixes),
    st.builds(RangeOp, keys),
    st.builds(RangeOp, prefixes, st.just(True), st.none() | st.integers(0, 3)),
)


class Model:
    """What the store must answer, computed the plain way."""

    def __init__(self) -> None:
        self.states: list[State] = [{}]  # states[r]: the store as of revision r
        self.order: list[list[bytes]] = [[]]  # order[r]: the keys revision r changed, in order
        self.compacted = 0
        self.leases: dict[int, tuple[int, int]] = {}  # lease -> (ttl, remaining)

    @property
    def revision(self) -> int:
        return len(self.states) - 1

    def now(self) -> State:
        return self.states[-1]

    def compare(self, state: State, c: Compare) -> bool:
        v = state.get(c.key)
        if c.target is CompareTarget.VALUE:
            if v is None:
                return False
            actual: Any = v[0]
        else:
            field = {CompareTarget.VERSION: 3, CompareTarget.CREATE_REVISION: 1}.get(c.target, 2)
            actual = v[field] if v else 0
        return {
            CompareOp.EQUAL: actual == c.value,
            CompareOp.NOT_EQUAL: actual != c.value,
            CompareOp.LESS: actual < c.value,
            CompareOp.GREATER: actual > c.value,
        }[c.op]

    def run(self, ops: tuple[TxnOp, ...]) -> tuple[tuple[Any, ...], bool]:
        """Apply ``ops`` at one revision; (responses, whether anything changed)."""
        rev = self.revision + 1
        state = dict(self.now())
        order: list[bytes] = []
        out: list[Any] = []

        def put(key: bytes, value: bytes, lease: int) -> PutResult:
            prev = state.get(key)
            create, version = (prev[1], prev[3] + 1) if prev else (rev, 1)
            state[key] = (value, create, rev, version, lease)
            order.append(key)
            return PutResult(rev, None if prev is None else _kv(key, prev))

        for op in ops:
            match op:
                case PutCommand(key, value, _, lease):
                    out.append(put(key, value, lease))
                case DeleteCommand(key):
                    prev = state.pop(key, None)
                    order.extend([key] if prev is not None else [])
                    out.append((prev, key))
                case DeletePrefixCommand(prefix):
                    gone = [(k, state.pop(k)) for k in sorted(state) if k.startswith(prefix)]
                    order.extend(k for k, _ in gone)
                    out.append(("prefix", tuple(_kv(k, v) for k, v in gone)))
                case RangeOp(key, True, limit):
                    found = [_kv(k, state[k]) for k in sorted(state) if k.startswith(key)]
                    cut = found if limit is None else found[:limit]
                    out.append(("range", tuple(cut), len(found) > len(cut)))
                case RangeOp(key, False):
                    out.append(("range", (_kv(key, state[key]),) if key in state else (), False))
        changed = bool(order)
        final_rev = rev if changed else self.revision
        if changed:
            self.states.append(state)
            self.order.append(order)
        return tuple(self._finish(r, final_rev) for r in out), changed

    @staticmethod
    def _finish(r: Any, rev: int) -> Any:
        """Responses carry the revision after the whole command."""
        if isinstance(r, PutResult):
            return r
        if r[0] == "prefix":
            return DeletePrefixResult(rev, r[1])
        if r[0] == "range":
            return RangeResult(r[1], r[2], rev)
        prev, key = r
        return DeleteResult(rev, None if prev is None else _kv(key, prev))

    def batches(self, start: int, prev_kv: bool) -> list[WatchBatch]:
        """The changes from revision ``start``, diffing consecutive states."""
        out = []
        for rev in range(max(start, 1), self.revision + 1):
            before, after = self.states[rev - 1], self.states[rev]
            events = []
            for key in self.order[rev]:
                old, new = before.get(key), after.get(key)
                if new is not None:
                    typ, kv = "put", _kv(key, new)
                else:
                    typ, kv = "delete", KeyValue(key, b"", 0, rev, 0)
                prev = (
                    _kv(key, old) if prev_kv and old is not None and rev > self.compacted else None
                )
                events.append(WatchEvent(typ, kv, prev))  # type: ignore[arg-type]
            out.append(WatchBatch(rev, tuple(events)))
        return out


class HistoryModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.kv = KVStateMachine()
        self.model = Model()
        self.index = 0
        # A snapshot being streamed: (the bytes it must come to, its chunks, those read so far).
        self.streaming: tuple[bytes, Iterator[bytes], list[bytes]] | None = None
        # Compaction cleans one key at a time: reads, snapshots and views meet waiting keys.
        self._clean_batch, _history.CLEAN_BATCH = _history.CLEAN_BATCH, 1

    def teardown(self) -> None:
        _history.CLEAN_BATCH = self._clean_batch

    def apply(self, command: Any) -> Any:
        self.index += 1
        return self.kv.apply(self.index, encode_command(command))

    @rule(key=keys, value=values, lease=lease_ids)
    def put(self, key: bytes, value: bytes, lease: int) -> None:
        m = self.model
        if lease and lease not in m.leases:
            expected: Any = LeaseNotFound(lease, m.revision)
        else:
            (expected,), _ = m.run((PutCommand(key, value, None, lease),))
        assert self.apply(PutCommand(key, value, None, lease)) == expected

    @rule(lease=lease_ids.filter(bool), ttl=st.integers(1, 100))
    def grant(self, lease: int, ttl: int) -> None:
        m = self.model
        expected = LeaseExists(lease) if lease in m.leases else LeaseGranted(lease, ttl)
        m.leases.setdefault(lease, (ttl, 0))
        assert self.apply(LeaseGrantCommand(lease, ttl)) == expected

    @rule(lease=lease_ids.filter(bool))
    def revoke(self, lease: int) -> None:
        m = self.model
        result = self.apply(LeaseRevokeCommand(lease))
        if lease not in m.leases:
            assert result == LeaseNotFound(lease, m.revision)
            return
        del m.leases[lease]
        attached = tuple(DeleteCommand(k) for k, v in sorted(m.now().items()) if v[4] == lease)
        m.run(attached)
        assert result == LeaseRevoked(lease, m.revision, len(attached))

    @rule(lease=lease_ids.filter(bool), remaining=st.integers(0, 50))
    def checkpoint(self, lease: int, remaining: int) -> None:
        m = self.model
        if lease in m.leases:
            m.leases[lease] = (m.leases[lease][0], remaining)
        assert self.apply(LeaseCheckpointCommand(((lease, remaining),))) == LeasesCheckpointed(1)

    @rule(key=keys)
    def delete(self, key: bytes) -> None:
        (expected,), _ = self.model.run((DeleteCommand(key),))
        assert self.apply(DeleteCommand(key)) == expected

    @rule(prefix=prefixes)
    def delete_prefix(self, prefix: bytes) -> None:
        (expected,), _ = self.model.run((DeletePrefixCommand(prefix),))
        assert self.apply(DeletePrefixCommand(prefix)) == expected

    @rule(
        cmp=st.lists(compares, max_size=3),
        success=st.lists(txn_ops, max_size=4),
        failure=st.lists(txn_ops, max_size=4),
    )
    def txn(self, cmp: list[Compare], success: list[TxnOp], failure: list[TxnOp]) -> None:
        txn = TxnCommand(tuple(cmp), tuple(success), tuple(failure))
        result = self.apply(txn)
        succeeded = all(self.model.compare(self.model.now(), c) for c in cmp)
        branch = txn.success if succeeded else txn.failure
        if _writes_twice(txn.success) or _writes_twice(txn.failure):
            assert isinstance(result, InvalidCommand), result
            assert result.revision == self.model.revision
            return
        unknown = [
            op.lease
            for op in branch
            if isinstance(op, PutCommand) and op.lease and op.lease not in self.model.leases
        ]
        if unknown:
            assert result == LeaseNotFound(unknown[0], self.model.revision)
            return
        responses, _ = self.model.run(branch)
        assert result == TxnResult(succeeded, self.model.revision, responses)

    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        m = self.model
        rev = data.draw(st.integers(0, m.revision + 2), label="revision")
        result = self.apply(CompactCommand(rev))
        if m.compacted < rev <= m.revision:
            m.compacted = rev
            assert result == CompactResult(m.revision, rev)
        else:
            assert isinstance(result, CompactRefused) and result.compact_revision == m.compacted

    @precondition(lambda self: self.streaming is None)
    @rule()
    def begin_streaming_a_snapshot(self) -> None:
        expected = b"".join(self.kv.snapshot_chunks(chunk_bytes=64))
        self.streaming = (expected, self.kv.snapshot_chunks(chunk_bytes=64), [])

    @precondition(lambda self: self.streaming is not None)
    @rule(chunks=st.integers(1, 3))
    def stream_some(self, chunks: int) -> None:
        assert self.streaming is not None
        _, stream, got = self.streaming
        got.extend(islice(stream, chunks))

    @precondition(lambda self: self.streaming is not None)
    @rule()
    def finish_streaming(self) -> None:
        assert self.streaming is not None
        expected, stream, got = self.streaming
        got.extend(stream)
        self.streaming = None
        assert b"".join(got) == expected

    @rule()
    def snapshot_and_restore(self) -> None:
        copy = KVStateMachine()
        copy.restore(self.kv.snapshot())
        self.kv = copy  # and continue on the restored copy: it must be the same store

    @rule(data=st.data(), key=keys)
    def read_at(self, data: st.DataObject, key: bytes) -> None:
        m = self.model
        rev = data.draw(st.integers(0, m.revision + 2), label="revision")
        if rev > m.revision:
            with pytest.raises(FutureRevision):
                self.kv.get(key, revision=rev)
        elif rev < m.compacted:
            with pytest.raises(Compacted) as info:
                self.kv.range(b"", revision=rev)
            assert info.value.compact_revision == m.compacted
        else:
            state = m.states[rev]
            assert self.kv.get(key, revision=rev) == (
                _kv(key, state[key]) if key in state else None
            )
            listed = self.kv.range(key[:1], revision=rev).kvs
            assert listed == tuple(_kv(k, state[k]) for k in sorted(state) if k.startswith(key[:1]))

    @precondition(lambda self: self.model.revision > 0)
    @rule(data=st.data(), prev_kv=st.booleans())
    def changes(self, data: st.DataObject, prev_kv: bool) -> None:
        m = self.model
        start = data.draw(st.integers(0, m.revision + 1), label="start")
        if m.compacted and start <= m.compacted:
            with pytest.raises(Compacted):
                list(self.kv.changes_since(start))
            return
        got = [self.kv.batch(rev, ks, prev_kv=prev_kv) for rev, ks in self.kv.changes_since(start)]
        assert got == m.batches(start, prev_kv)

    @invariant()
    def compaction_leaves_nothing_behind(self) -> None:
        """Every key not waiting to be cleaned keeps exactly what compaction keeps (one key
        is cleaned per revision here: keys wait across many steps)."""
        h = self.kv._history
        pending = set(h.keys_to_clean())
        for key, latest in h._latest.items():
            versions = [*h._older.get(key, ()), latest]
            if key not in pending:
                assert _compacted(versions, h.compact_revision) == versions, key

    @invariant()
    def agrees_now(self) -> None:
        m = self.model
        assert self.kv.revision == m.revision
        assert self.kv.compact_revision == m.compacted
        assert len(self.kv) == len(m.now())
        assert self.kv.range().kvs == tuple(_kv(k, v) for k, v in sorted(m.now().items()))
        assert self.kv.retained_revisions == m.revision - m.compacted
        assert self.kv.lease_ids() == sorted(m.leases)
        for lease, (ttl, remaining) in m.leases.items():
            attached = tuple(k for k, v in sorted(m.now().items()) if v[4] == lease)
            assert self.kv.lease(lease) == LeaseInfo(lease, ttl, remaining, attached)


def _writes_twice(branch: tuple[TxnOp, ...]) -> bool:
    """Whether two writes of ``branch`` touch one key (as etcd, the store refuses that)."""
    written: list[tuple[bytes, bool]] = []  # (key or prefix, is a prefix)
    for op in branch:
        if isinstance(op, (PutCommand, DeleteCommand)):
            new = (op.key, False)
        elif isinstance(op, DeletePrefixCommand):
            new = (op.prefix, True)
        else:
            continue
        if any(_overlap(old, new) for old in written):
            return True
        written.append(new)
    return False


def _overlap(a: tuple[bytes, bool], b: tuple[bytes, bool]) -> bool:
    (x, x_prefix), (y, y_prefix) = a, b
    if x_prefix and y_prefix:
        return x.startswith(y) or y.startswith(x)
    if x_prefix:
        return y.startswith(x)
    if y_prefix:
        return x.startswith(y)
    return x == y


TestHistoryModel = HistoryModel.TestCase
TestHistoryModel.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


@given(st.lists(st.tuples(keys, values), max_size=30))
def test_a_compacted_store_restores_to_the_same_history(puts: list[tuple[bytes, bytes]]) -> None:
    kv = KVStateMachine()
    for i, (k, v) in enumerate(puts, 1):
        kv.apply(i, encode_command(PutCommand(k, v)))
    if kv.revision > 2:
        kv.apply(len(puts) + 1, encode_command(CompactCommand(kv.revision // 2)))
    copy = KVStateMachine()
    copy.restore(kv.snapshot())
    assert copy.snapshot() == kv.snapshot()
    for rev in range(kv.compact_revision, kv.revision + 1):
        assert copy.range(revision=rev) == kv.range(revision=rev)


def test_a_transactions_json_carries_the_leases_of_its_puts() -> None:
    from raftkv.kv import TxnFormatError, txn_from_json, txn_to_json

    txn = TxnCommand(success=(PutCommand(b"k", b"v", None, 7), PutCommand(b"j", b"w")))
    body = txn_to_json(txn)
    assert body["success"][0]["put"]["lease"] == 7 and "lease" not in body["success"][1]["put"]
    assert txn_from_json(body) == txn
    for bad in (0, -1, "7", 2**63, True):
        with pytest.raises(TxnFormatError, match=r"success\[0\]\.put\.lease"):
            txn_from_json({"success": [{"put": {"key": "k", "value": "v", "lease": bad}}]})


def test_compacting_many_keys_cleans_them_a_batch_per_revision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Compacting revisions that changed many keys removes their old versions a batch at a
    time, one batch per later revision, instead of all at once; reads are right throughout,
    and every key ends up as compaction leaves it."""
    monkeypatch.setattr(_history, "CLEAN_BATCH", 10)
    kv = KVStateMachine()
    index = 0
    for round_ in range(2):  # every key written twice: the first versions are compactable
        for n in range(100):
            index += 1
            kv.apply(index, encode_put(b"k%03d" % n, b"%d" % round_))
    h = kv._history
    kv.apply(index + 1, encode_command(CompactCommand(kv.revision)))
    assert 0 < len(h.keys_to_clean()) <= 190  # one batch cleaned by the compaction itself
    for n in range(100):
        assert kv.get(b"k%03d" % n) is not None
    for step in range(40):  # 4 units each: 100 keys to clean, 100 seen again (skipped)
        kv.apply(index + 2 + step, encode_put(b"other", b"v"))
    assert not h.keys_to_clean()
    assert set(h._older) == {b"other"}  # the k keys kept only their versions since
    assert len(kv) == 101


def test_each_revision_cleans_in_proportion_to_what_it_wrote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A revision of one key cleans ``CLEAN_MIN`` keys, one of many twice as many as it wrote,
    up to ``CLEAN_BATCH``: a follower applying hundreds of small revisions at once must not
    clean a full batch for each."""
    monkeypatch.setattr(_history, "CLEAN_BATCH", 50)
    monkeypatch.setattr(_history, "CLEAN_MIN", 4)
    kv = KVStateMachine()
    index = 0
    for round_ in range(2):
        for n in range(300):
            index += 1
            kv.apply(index, encode_put(b"k%03d" % n, b"%d" % round_))
    h = kv._history
    index += 1
    kv.apply(index, encode_command(CompactCommand(kv.revision)))
    waiting = len(h.keys_to_clean())
    assert waiting == 600 - 50  # each key's two revisions; the compaction cleaned a batch

    def put_keys(count: int) -> int:
        nonlocal index
        index += 1
        ops = [PutCommand(b"new%03d" % i, b"v") for i in range(count)]
        kv.apply(index, encode_command(TxnCommand((), tuple(ops), ())))
        return len(h.keys_to_clean())

    assert put_keys(1) == waiting - 4
    assert put_keys(10) == waiting - 4 - 20
    assert put_keys(40) == waiting - 4 - 20 - 50
    for n in range(300):
        assert kv.get(b"k%03d" % n) == kv.get(b"k%03d" % n, revision=kv.revision)


def test_keys_with_nothing_to_drop_are_passed_over_cheaply(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bulk load's keys have one version each: cleaning them after a compaction passes them
    over ``SKIP_COST`` to a unit of the budget; deleted keys still go altogether."""
    monkeypatch.setattr(_history, "CLEAN_BATCH", 5)
    kv = KVStateMachine()
    puts = tuple(PutCommand(b"k%03d" % i, b"v") for i in range(200))
    kv.apply(1, encode_command(TxnCommand((), puts, ())))
    kv.apply(2, encode_command(DeleteCommand(b"k000")))
    kv.apply(3, encode_command(DeleteCommand(b"k001")))
    h = kv._history
    kv.apply(4, encode_command(CompactCommand(kv.revision)))
    # k000 and k001 (deleted: versions to drop) take a unit each, then 3 units pass over
    # 3 * SKIP_COST keys.
    first = 2 + 3 * _history.SKIP_COST
    assert h.keys_to_clean()[:2] == [b"k%03d" % first, b"k%03d" % (first + 1)]
    assert len(h.keys_to_clean()) == 202 - 2 - 3 * _history.SKIP_COST
    for i in range(5, 20):
        kv.apply(i, encode_put(b"other", b"v"))
    assert not h.keys_to_clean()
    assert list(h.keys_from(b"k")) == [b"k%03d" % i for i in range(2, 200)] + [b"other"]
    assert kv.get(b"k002") is not None and kv.get(b"k000") is None


@given(st.integers(0, 3 * KEY_CHUNK + 10), st.data())
def test_sorted_keys_is_the_sorted_list_of_its_chunks(count: int, data: st.DataObject) -> None:
    """Built from a reader's lists without sorting, it answers and changes as SortedList does."""
    keys = [b"%06d" % (3 * i) for i in range(count)]  # room for new keys between them
    chunks = [keys[i : i + KEY_CHUNK] for i in range(0, len(keys), KEY_CHUNK)]
    built, expected = sorted_keys(chunks), SortedList(keys)
    assert list(built) == list(expected) and len(built) == len(expected)
    for _ in range(data.draw(st.integers(0, 20))):
        key = b"%06d" % data.draw(st.integers(0, 3 * count + 3))
        assert built.bisect_left(key) == expected.bisect_left(key)
        assert list(built.irange(key)) == list(expected.irange(key))
        if key in expected:
            built.remove(key)
            expected.remove(key)
        else:
            built.add(key)
            expected.add(key)
        if expected:
            i = data.draw(st.integers(0, len(expected) - 1))
            assert built[i] == expected[i] and built.index(expected[i]) == i
    assert list(built) == list(expected)
    built._check()  # sortedcontainers' own invariants
