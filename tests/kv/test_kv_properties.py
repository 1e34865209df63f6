"""Property tests: KVStateMachine against a dict model, snapshots, determinism, garbage."""

from typing import Any

import cbor2
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raftkv.kv import (
    CompareFailed,
    DeleteResult,
    InvalidCommand,
    KeyValue,
    KVStateMachine,
    PutResult,
    encode_delete,
    encode_put,
)

# Few, overlapping keys so that updates, deletes, prefixes and conflicts actually happen.
keys = st.sampled_from([b"a", b"ab", b"abc", b"b", b"b/1", b"b/2", b"\x00", b"\xff", b"\xff\x00"])
prefixes = st.sampled_from([b"", b"a", b"ab", b"b", b"b/", b"\xff", b"c"])
values = st.binary(max_size=8)


class KVModel(RuleBasedStateMachine):
    """The state machine must behave like a dict of key -> (value, create, mod, version)."""

    def __init__(self) -> None:
        super().__init__()
        self.kv = KVStateMachine()
        self.model: dict[bytes, tuple[bytes, int, int, int]] = {}
        self.revision = 0
        self.index = 0

    def apply(self, command: bytes) -> Any:
        self.index += 1
        return self.kv.apply(self.index, command)

    def current(self, key: bytes) -> int:
        return self.model[key][2] if key in self.model else 0

    def expected_kv(self, key: bytes) -> KeyValue | None:
        if key not in self.model:
            return None
        return KeyValue(key, *self.model[key])

    def do_put(self, key: bytes, value: bytes) -> PutResult:
        prev = self.expected_kv(key)
        self.revision += 1
        create, version = (prev.create_revision, prev.version + 1) if prev else (self.revision, 1)
        self.model[key] = (value, create, self.revision, version)
        return PutResult(self.revision, prev)

    @rule(key=keys, value=values)
    def put(self, key: bytes, value: bytes) -> None:
        expected = self.do_put(key, value)
        assert self.apply(encode_put(key, value)) == expected

    @rule(key=keys, value=values, data=st.data())
    def compare_and_put(self, key: bytes, value: bytes, data: st.DataObject) -> None:
        # Half the time the right revision, otherwise anything plausible.
        if_revision = data.draw(
            st.just(self.current(key)) | st.integers(0, self.revision + 1), label="if_revision"
        )
        if if_revision == self.current(key):
            expected: object = self.do_put(key, value)
        else:
            expected = CompareFailed(key, if_revision, self.current(key), self.revision)
        assert self.apply(encode_put(key, value, if_revision=if_revision)) == expected

    @rule(key=keys, data=st.data())
    def delete(self, key: bytes, data: st.DataObject) -> None:
        if_revision = data.draw(
            st.none() | st.just(self.current(key)) | st.integers(0, self.revision + 1),
            label="if_revision",
        )
        prev = self.expected_kv(key)
        if if_revision is not None and if_revision != self.current(key):
            expected: object = CompareFailed(key, if_revision, self.current(key), self.revision)
        elif prev is None:
            expected = DeleteResult(self.revision, None)
        else:
            self.revision += 1
            del self.model[key]
            expected = DeleteResult(self.revision, prev)
        assert self.apply(encode_delete(key, if_revision=if_revision)) == expected

    @rule(data=st.binary(max_size=20))
    def garbage(self, data: bytes) -> None:
        result = self.apply(data)
        if data:
            # Random bytes are (almost) never a valid command; if they are, the model disagrees.
            assert isinstance(result, InvalidCommand)
            assert result.revision == self.revision
        else:
            assert result is None

    @rule()
    def snapshot_and_restore(self) -> None:
        copy = KVStateMachine()
        copy.restore(self.kv.snapshot())
        assert copy.revision == self.kv.revision
        assert copy.applied_index == self.kv.applied_index
        assert copy.range().kvs == self.kv.range().kvs
        self.kv = copy  # and continue on the restored copy

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        assert self.kv.get(key) == self.expected_kv(key)

    @rule(prefix=prefixes, limit=st.none() | st.integers(0, 4), after=st.none() | keys)
    def range(self, prefix: bytes, limit: int | None, after: bytes | None) -> None:
        matching = [
            k for k in sorted(self.model) if k.startswith(prefix) and (after is None or k > after)
        ]
        page = matching if limit is None else matching[:limit]
        result = self.kv.range(prefix, after=after, limit=limit)
        assert result.kvs == tuple(self.expected_kv(k) for k in page)
        assert result.more == (len(page) < len(matching))
        assert result.revision == self.revision

    @invariant()
    def counters_agree(self) -> None:
        assert self.kv.revision == self.revision
        assert self.kv.applied_index == self.index
        assert len(self.kv) == len(self.model)


TestKVModel = KVModel.TestCase


commands = st.one_of(
    st.builds(
        lambda k, v, r: encode_put(k, v, if_revision=r),
        keys,
        values,
        st.none() | st.integers(0, 30),
    ),
    st.builds(lambda k, r: encode_delete(k, if_revision=r), keys, st.none() | st.integers(0, 30)),
    st.binary(max_size=12),
)


@given(st.lists(commands, max_size=60))
def test_replicas_agree(log: list[bytes]) -> None:
    """Two replicas fed the same log give the same results and the same snapshot, byte for byte."""
    a, b = KVStateMachine(), KVStateMachine()
    for index, command in enumerate(log, start=1):
        assert a.apply(index, command) == b.apply(index, command)
    assert a.snapshot() == b.snapshot()


@given(st.lists(commands, max_size=60), st.integers(0, 60))
def test_restored_replica_catches_up_identically(log: list[bytes], cut: int) -> None:
    """Snapshot anywhere, restore elsewhere, replay the rest: as if the replica never stopped."""
    a, b = KVStateMachine(), KVStateMachine()
    for index, command in enumerate(log, start=1):
        a.apply(index, command)
        if index == cut:
            b.restore(a.snapshot())
        elif index > cut:
            b.apply(index, command)
    if cut >= len(log):
        b.restore(a.snapshot())
    assert b.snapshot() == a.snapshot()


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.binary(max_size=8)
    | st.text(max_size=4)
    | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(
    st.one_of(
        cbor_values.map(cbor2.dumps),
        st.lists(cbor_values, max_size=6).map(lambda v: cbor2.dumps([1, *v])),
    )
)
def test_well_formed_cbor_that_is_not_a_command_never_raises(data: bytes) -> None:
    kv = KVStateMachine()
    kv.apply(1, encode_put(b"a", b"1"))
    before = kv.snapshot()
    result = kv.apply(2, data)
    assert isinstance(result, InvalidCommand | PutResult | DeleteResult | CompareFailed)
    if isinstance(result, InvalidCommand):
        assert kv.revision == 1
        kv.applied_index = 1
        assert kv.snapshot() == before


@given(st.binary(max_size=64))
def test_random_bytes_never_raise(data: bytes) -> None:
    kv = KVStateMachine()
    result = kv.apply(1, data)
    assert result is None or isinstance(result, InvalidCommand | PutResult | DeleteResult)
    assert kv.applied_index == 1
