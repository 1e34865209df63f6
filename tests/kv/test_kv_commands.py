"""Command encoding, decoding and the input checks run before a command is proposed."""

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkv import RaftError
from raftkv.kv import (
    DEFAULT_MAX_KEY_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    DeleteCommand,
    InvalidKey,
    PutCommand,
    RangeOp,
    TxnCommand,
    ValueTooLarge,
    check_key,
    check_value_size,
    decode_command,
    encode_command,
    encode_delete,
    encode_put,
)

keys = st.binary(min_size=1, max_size=64)
revisions = st.none() | st.integers(0, 2**63 - 1)


def test_default_limits() -> None:
    assert DEFAULT_MAX_KEY_BYTES == 1024
    assert DEFAULT_MAX_VALUE_BYTES == 1536 * 1024


@given(keys, st.binary(max_size=256), revisions)
def test_put_round_trip(key: bytes, value: bytes, if_revision: int | None) -> None:
    data = encode_put(key, value, if_revision=if_revision)
    assert decode_command(data) == PutCommand(key, value, if_revision)


@given(keys, revisions)
def test_delete_round_trip(key: bytes, if_revision: int | None) -> None:
    assert decode_command(encode_delete(key, if_revision=if_revision)) == DeleteCommand(
        key, if_revision
    )


def test_format_is_versioned_and_stable() -> None:
    # The log outlives the code: this exact encoding must keep decoding.
    assert encode_command(PutCommand(b"k", b"v", 3)) == cbor2.dumps([1, 1, b"k", b"v", 3])
    assert encode_command(DeleteCommand(b"k")) == cbor2.dumps([1, 2, b"k", None])


def test_check_key() -> None:
    assert check_key(b"a") == b"a"
    assert check_key(b"x" * 1024) == b"x" * 1024
    with pytest.raises(InvalidKey, match="empty"):
        check_key(b"")
    with pytest.raises(InvalidKey, match="1025 bytes is over the limit of 1024"):
        check_key(b"x" * 1025)
    with pytest.raises(InvalidKey, match="over the limit of 4"):
        check_key(b"12345", max_bytes=4)
    with pytest.raises(InvalidKey, match="must be bytes, not str"):
        check_key("k")  # type: ignore[arg-type]


def test_check_value_size() -> None:
    check_value_size(DEFAULT_MAX_VALUE_BYTES)
    with pytest.raises(ValueTooLarge) as info:
        check_value_size(DEFAULT_MAX_VALUE_BYTES + 1)
    assert info.value.size == DEFAULT_MAX_VALUE_BYTES + 1
    assert info.value.limit == DEFAULT_MAX_VALUE_BYTES
    assert str(info.value) == "value of 1572865 bytes is over the limit of 1572864 bytes"
    check_value_size(10, max_bytes=10)
    with pytest.raises(ValueTooLarge):
        check_value_size(11, max_bytes=10)


def test_input_errors_are_value_errors_in_the_raftkv_tree() -> None:
    for cls in (InvalidKey, ValueTooLarge):
        assert issubclass(cls, ValueError)
        assert issubclass(cls, RaftError)


def test_encode_put_checks_its_input() -> None:
    with pytest.raises(InvalidKey):
        encode_put(b"", b"v")
    with pytest.raises(InvalidKey):
        encode_put(b"abc", b"v", max_key_bytes=2)
    with pytest.raises(ValueTooLarge):
        encode_put(b"k", b"12345", max_value_bytes=4)
    with pytest.raises(TypeError, match="value must be bytes"):
        encode_put(b"k", "v")  # type: ignore[arg-type]
    for bad in (-1, True, 2**63, 1.0):
        with pytest.raises(ValueError, match="if_revision"):
            encode_put(b"k", b"v", if_revision=bad)  # type: ignore[arg-type]


def test_encode_delete_checks_its_input() -> None:
    with pytest.raises(InvalidKey):
        encode_delete(b"")
    with pytest.raises(InvalidKey):
        encode_delete(b"abc", max_key_bytes=2)
    with pytest.raises(ValueError, match="if_revision"):
        encode_delete(b"k", if_revision=-5)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "undecodable"),
        (b"\xff", "undecodable"),
        (cbor2.dumps([1, 1, b"k", b"v", None])[:-1], "undecodable"),
        (cbor2.dumps([1, 2, b"k", None]) + b"\x00", "1 trailing bytes"),
        (cbor2.dumps({"op": "put"}), "must be an array"),
        (cbor2.dumps([1]), "must be an array"),
        (cbor2.dumps([2, 1, b"k", b"v", None]), "unsupported command version 2"),
        (cbor2.dumps([True, 1, b"k", b"v", None]), "unsupported command version"),
        (cbor2.dumps([1, 3, b"k"]), "unknown operation 3"),
        (cbor2.dumps([1, 1, b"k", b"v"]), "unknown operation 1 with 2 arguments"),
        (cbor2.dumps([1, 2, b"k", None, None]), "unknown operation 2 with 3 arguments"),
        (cbor2.dumps([1, 1, b"", b"v", None]), "non-empty byte string"),
        (cbor2.dumps([1, 1, "k", b"v", None]), "non-empty byte string"),
        (cbor2.dumps([1, 1, b"k", "v", None]), "value must be a byte string"),
        (cbor2.dumps([1, 1, b"k", b"v", -1]), "bad if_revision"),
        (cbor2.dumps([1, 1, b"k", b"v", 2**64]), "bad if_revision"),
        (cbor2.dumps([1, 2, b"k", 1.5]), "bad if_revision"),
        (cbor2.dumps([1, 2, b"k", False]), "bad if_revision"),
        (b"\x81" * 100 + b"\x01", "undecodable"),  # deeply nested arrays
    ],
)
def test_decode_refuses_malformed_commands(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_command(data)


@pytest.mark.parametrize(
    "item",
    [
        cbor2.CBORTag(35, "("),  # a regular expression that does not compile
        cbor2.CBORTag(30, [1, 0]),  # a rational with a zero denominator
        cbor2.CBORTag(29, 5),  # a shared reference to nothing
        cbor2.CBORTag(1, 1e300),  # a date out of range
        cbor2.CBORTag(37, b"12"),  # a short UUID
        cbor2.CBORTag(2, b"\xff" * 100),  # a bignum
    ],
)
def test_decode_refuses_hostile_tags(item: object) -> None:
    for data in (cbor2.dumps(item), cbor2.dumps([1, 1, item, b"v", None])):
        with pytest.raises(ValueError):
            decode_command(data)


def test_decode_refuses_huge_declared_lengths_without_allocating() -> None:
    with pytest.raises(ValueError, match="undecodable"):
        decode_command(b"\x85\x01\x01\x5b" + (2**60).to_bytes(8, "big"))


def txn(*ops: list[object]) -> bytes:
    return cbor2.dumps([1, 4, [], list(ops), []])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (txn([1, b"", b"v", 0]), "non-empty byte string"),
        (txn([1, "k", b"v", 0]), "non-empty byte string"),
        (txn([1, b"k", "v", 0]), "value must be a byte string"),
        (txn([1, b"k", b"v", -1]), "bad lease"),
        (txn([1, b"k", b"v", True]), "bad lease"),
        (txn([1, b"k", b"v", 2**64]), "bad lease"),
        (txn([1, b"k", b"v"]), "unknown transaction operation 1"),
        (txn([1, b"a", b"v", 0], [1, b"b", b"v", 0], [1, b"a", b"w", 0]), "writes one key twice"),
        (txn([1, b"a", b"v", 0], [2, b"a"]), "writes one key twice"),
        (txn([5, b"a"], [1, b"ab", b"v", 0]), "writes one key twice"),
    ],
)
def test_decode_refuses_malformed_transaction_puts(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_command(data)


def test_a_transaction_of_many_puts_round_trips() -> None:
    ops = tuple(PutCommand(b"key-%04d" % i, b"v" * i, None, i % 3) for i in range(200))
    command = TxnCommand((), ops, (DeleteCommand(b"key-0000"), RangeOp(b"key-", True, 5)))
    assert decode_command(encode_command(command)) == command
