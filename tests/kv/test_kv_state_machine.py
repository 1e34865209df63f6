"""KVStateMachine: apply, revisions, compare-and-swap, ranges and bad entries."""

import doctest

import cbor2
import pytest

import raftkv.kv._commands
import raftkv.kv._store
from raftkv.kv import (
    AsUser,
    CompareFailed,
    DeleteCommand,
    DeleteResult,
    InvalidCommand,
    KeyValue,
    KVStateMachine,
    PutCommand,
    PutResult,
    RangeOp,
    RangeResult,
    TxnCommand,
    TxnResult,
    encode_command,
    encode_delete,
    encode_put,
)


class Driver:
    """Applies commands at consecutive indexes, as the runtime does."""

    def __init__(self) -> None:
        self.kv = KVStateMachine()
        self.index = 0

    def apply(self, command: bytes) -> object:
        self.index += 1
        return self.kv.apply(self.index, command)

    def put(self, key: bytes, value: bytes, if_revision: int | None = None) -> object:
        return self.apply(encode_put(key, value, if_revision=if_revision))

    def delete(self, key: bytes, if_revision: int | None = None) -> object:
        return self.apply(encode_delete(key, if_revision=if_revision))


@pytest.fixture
def d() -> Driver:
    return Driver()


def test_docstring_examples() -> None:
    for module in (raftkv.kv._store, raftkv.kv._commands):
        failures, _ = doctest.testmod(module)
        assert failures == 0


def test_new_store_is_empty() -> None:
    kv = KVStateMachine()
    assert (kv.revision, kv.applied_index, len(kv)) == (0, 0, 0)
    assert kv.get(b"a") is None


def test_put_creates_then_updates(d: Driver) -> None:
    assert d.put(b"a", b"1") == PutResult(1, None)
    assert d.put(b"b", b"x") == PutResult(2, None)
    first = KeyValue(b"a", b"1", 1, 1, 1)
    assert d.put(b"a", b"2") == PutResult(3, first)
    assert d.kv.get(b"a") == KeyValue(b"a", b"2", create_revision=1, mod_revision=3, version=2)
    assert (d.kv.revision, d.kv.applied_index, len(d.kv)) == (3, 3, 2)


def test_empty_value_is_a_value(d: Driver) -> None:
    d.put(b"a", b"")
    assert d.kv.get(b"a") == KeyValue(b"a", b"", 1, 1, 1)


def test_delete(d: Driver) -> None:
    d.put(b"a", b"1")
    result = d.delete(b"a")
    assert result == DeleteResult(2, KeyValue(b"a", b"1", 1, 1, 1))
    assert isinstance(result, DeleteResult)
    assert result.deleted
    assert d.kv.get(b"a") is None
    assert len(d.kv) == 0


def test_delete_of_an_absent_key_changes_nothing(d: Driver) -> None:
    d.put(b"a", b"1")
    result = d.delete(b"b")
    assert result == DeleteResult(1, None)
    assert isinstance(result, DeleteResult)
    assert not result.deleted
    assert d.kv.revision == 1


def test_recreated_key_starts_a_new_life(d: Driver) -> None:
    d.put(b"a", b"1")
    d.put(b"a", b"2")
    d.delete(b"a")
    d.put(b"a", b"3")
    assert d.kv.get(b"a") == KeyValue(b"a", b"3", create_revision=4, mod_revision=4, version=1)


def test_create_only(d: Driver) -> None:
    assert d.put(b"a", b"1", if_revision=0) == PutResult(1, None)
    assert d.put(b"a", b"2", if_revision=0) == CompareFailed(b"a", 0, 1, 1)
    assert d.kv.get(b"a") == KeyValue(b"a", b"1", 1, 1, 1)


def test_compare_and_swap_put(d: Driver) -> None:
    d.put(b"a", b"1")
    d.put(b"other", b"x")
    assert d.put(b"a", b"2", if_revision=2) == CompareFailed(b"a", 2, 1, 2)
    assert d.put(b"a", b"2", if_revision=1) == PutResult(3, KeyValue(b"a", b"1", 1, 1, 1))
    assert d.put(b"a", b"3", if_revision=1) == CompareFailed(b"a", 1, 3, 3)
    assert d.put(b"missing", b"3", if_revision=1) == CompareFailed(b"missing", 1, 0, 3)
    assert d.kv.revision == 3
    assert d.kv.applied_index == 6  # failed commands are still applied entries


def test_compare_and_swap_delete(d: Driver) -> None:
    d.put(b"a", b"1")
    assert d.delete(b"a", if_revision=5) == CompareFailed(b"a", 5, 1, 1)
    assert d.kv.get(b"a") is not None
    assert d.delete(b"a", if_revision=1) == DeleteResult(2, KeyValue(b"a", b"1", 1, 1, 1))
    # An absent key has mod_revision 0: "delete if absent" trivially holds and deletes nothing.
    assert d.delete(b"a", if_revision=0) == DeleteResult(2, None)
    assert d.delete(b"a", if_revision=1) == CompareFailed(b"a", 1, 0, 2)


def test_empty_entry_is_a_no_op(d: Driver) -> None:
    d.put(b"a", b"1")
    assert d.apply(b"") is None
    assert (d.kv.revision, d.kv.applied_index) == (1, 2)


def test_undecodable_command_is_a_result_not_a_crash(d: Driver) -> None:
    d.put(b"a", b"1")
    result = d.apply(cbor2.dumps([9, 1, b"a", b"2", None]))
    assert isinstance(result, InvalidCommand)
    assert result.revision == 1
    assert "unsupported command version 9" in result.reason
    assert d.kv.get(b"a") == KeyValue(b"a", b"1", 1, 1, 1)
    assert d.kv.applied_index == 2
    assert d.put(b"a", b"2") == PutResult(2, KeyValue(b"a", b"1", 1, 1, 1))


def test_indexes_may_skip_but_never_go_back() -> None:
    kv = KVStateMachine()
    kv.apply(3, encode_put(b"a", b"1"))  # entries 1-2 were not for the state machine
    assert kv.applied_index == 3
    for index in (3, 2):
        with pytest.raises(ValueError, match="out of order"):
            kv.apply(index, encode_put(b"a", b"2"))
    assert kv.get(b"a") == KeyValue(b"a", b"1", 1, 1, 1)


def keys_of(result: RangeResult) -> list[bytes]:
    return [kv.key for kv in result.kvs]


def test_range_by_prefix(d: Driver) -> None:
    for key in (b"b/2", b"a", b"b/1", b"b", b"c", b"b/3/x", b"ba", b"b\xff", b"\xff"):
        d.put(key, key.upper())
    everything = d.kv.range()
    assert keys_of(everything) == sorted(keys_of(everything))
    assert len(everything.kvs) == 9
    assert not everything.more
    assert everything.revision == 9
    assert keys_of(d.kv.range(b"b/")) == [b"b/1", b"b/2", b"b/3/x"]
    assert keys_of(d.kv.range(b"b")) == [b"b", b"b/1", b"b/2", b"b/3/x", b"ba", b"b\xff"]
    assert keys_of(d.kv.range(b"\xff")) == [b"\xff"]
    assert keys_of(d.kv.range(b"zz")) == []
    assert d.kv.range(b"b/1").kvs[0].value == b"B/1"


def test_range_limit_and_paging(d: Driver) -> None:
    for key in (b"k1", b"k2", b"k3", b"k4", b"l"):
        d.put(key, b"v")
    page = d.kv.range(b"k", limit=2)
    assert (keys_of(page), page.more) == ([b"k1", b"k2"], True)
    page = d.kv.range(b"k", after=b"k2", limit=2)
    assert (keys_of(page), page.more) == ([b"k3", b"k4"], False)
    page = d.kv.range(b"k", after=b"k4", limit=2)
    assert (keys_of(page), page.more) == ([], False)
    page = d.kv.range(b"k", limit=4)
    assert (keys_of(page), page.more) == ([b"k1", b"k2", b"k3", b"k4"], False)
    page = d.kv.range(b"k", limit=0)
    assert (keys_of(page), page.more) == ([], True)
    page = d.kv.range(b"k", after=b"a")  # an `after` before the prefix does not matter
    assert keys_of(page) == [b"k1", b"k2", b"k3", b"k4"]
    page = d.kv.range(after=b"k25")
    assert keys_of(page) == [b"k3", b"k4", b"l"]
    with pytest.raises(ValueError, match="limit"):
        d.kv.range(limit=-1)


def test_sorted_index_follows_deletes(d: Driver) -> None:
    for key in (b"c", b"a", b"b", b"d"):
        d.put(key, b"v")
    d.delete(b"b")
    d.delete(b"d")
    d.put(b"bb", b"v")
    assert keys_of(d.kv.range()) == [b"a", b"bb", b"c"]
    assert len(d.kv) == 3


def test_a_large_store_adds_nothing_for_the_garbage_collector_to_walk() -> None:
    """A full collection walks every tracked object; the store keeps its keys as plain tuples of
    bytes and ints, which the collector stops tracking, so its pauses do not grow with it."""
    import gc

    kv = KVStateMachine()
    gc.collect()
    before = len(gc.get_objects())
    for i in range(10_000):
        kv.apply(i + 1, encode_put(b"k%06d" % (i * 7919 % 10_000), b"v"))
    # Twice: a collection stops tracking a tuple once what it holds is untracked, so the change
    # index's (revision, keys) pairs made since the last young collection (many of them under
    # the node's raised thresholds, raftkv._gc) are untracked by the second one.
    gc.collect()
    gc.collect()
    assert len(gc.get_objects()) - before < 100
    assert kv.get(b"k000001") is not None and len(kv) == 10_000


def test_every_response_of_a_transaction_tells_the_revision_after_it(d: Driver) -> None:
    d.put(b"a", b"1")
    ops = (RangeOp(b"a"), PutCommand(b"b", b"2"), DeleteCommand(b"a"), PutCommand(b"c", b"3"))
    result = d.apply(encode_command(AsUser(None, TxnCommand((), ops, ()))))
    a = KeyValue(b"a", b"1", 1, 1, 1)
    assert result == TxnResult(
        True,
        2,
        (
            RangeResult((a,), False, 2),
            PutResult(2, None),
            DeleteResult(2, a),
            PutResult(2, None),
        ),
    )
