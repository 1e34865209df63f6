"""Snapshots: streamed out, restored whole or from a stream, refused when damaged."""

import io

import cbor2
import pytest

from raftkv import CorruptSnapshot
from raftkv.kv import KeyValue, KVStateMachine, encode_delete, encode_put


def state(kv: KVStateMachine) -> tuple[int, int, tuple[KeyValue, ...]]:
    return kv.revision, kv.applied_index, kv.range().kvs


def filled(n: int = 50, value_bytes: int = 100) -> KVStateMachine:
    kv = KVStateMachine()
    index = 0
    for i in range(n):
        index += 1
        kv.apply(index, encode_put(f"key/{i % 37:03}".encode(), bytes([i % 256]) * value_bytes))
    index += 1
    kv.apply(index, encode_delete(b"key/005"))
    index += 1
    kv.apply(index, b"")
    return kv


def test_round_trip() -> None:
    kv = filled()
    copy = KVStateMachine()
    copy.restore(kv.snapshot())
    assert state(copy) == state(kv)
    assert copy.applied_index == 52
    # The copy keeps working as the original would.
    assert copy.apply(53, encode_put(b"key/000", b"x")) == kv.apply(
        53, encode_put(b"key/000", b"x")
    )
    assert state(copy) == state(kv)


def test_empty_round_trip() -> None:
    copy = filled()
    copy.restore(KVStateMachine().snapshot())
    assert state(copy) == (0, 0, ())
    assert copy.get(b"key/001") is None


def test_chunks_concatenate_to_the_snapshot() -> None:
    kv = filled(value_bytes=300)
    chunks = list(kv.snapshot_chunks(chunk_bytes=1000))
    assert len(chunks) >= 8
    assert all(len(c) < 1000 + 400 for c in chunks)  # about chunk_bytes: one record over at most
    assert b"".join(chunks) == kv.snapshot()


def test_chunks_reflect_the_state_when_asked_for() -> None:
    kv = filled()
    expected = kv.snapshot()
    chunks = kv.snapshot_chunks(chunk_bytes=256)
    first = next(chunks)
    kv.apply(100, encode_put(b"key/000", b"changed"))
    kv.apply(101, encode_delete(b"key/010"))
    kv.apply(102, encode_put(b"a-new-key", b"v"))
    assert first + b"".join(chunks) == expected


def test_restore_from_a_stream() -> None:
    kv = filled()
    stream = io.BytesIO()
    for chunk in kv.snapshot_chunks(chunk_bytes=512):
        stream.write(chunk)
    stream.seek(0)
    copy = KVStateMachine()
    copy.restore_from(stream)
    assert state(copy) == state(kv)


class OneByteAtATime(io.RawIOBase):
    """A non-seekable stream returning short reads, like a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        part = bytes(self._data[: 1 if size < 0 else min(size, 1)])
        self._data = self._data[len(part) :]
        return part


def test_restore_from_a_non_seekable_stream() -> None:
    kv = filled(10)
    copy = KVStateMachine()
    copy.restore_from(OneByteAtATime(kv.snapshot()))  # type: ignore[arg-type]
    assert state(copy) == state(kv)


def header(revision: int = 5, applied: int = 7, count: int = 1) -> bytes:
    return cbor2.dumps(["raftkv-kv", 1, revision, applied, count])


def record(key: bytes = b"k", create: int = 1, mod: int = 1, version: int = 1) -> bytes:
    return cbor2.dumps([key, b"v", create, mod, version])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "undecodable"),
        (cbor2.dumps("garbage"), "not a raftkv key-value snapshot"),
        (cbor2.dumps(["other", 1, 0, 0, 0]), "not a raftkv key-value snapshot"),
        (cbor2.dumps(["raftkv-kv", 2, 0, 0, 0]), "unsupported snapshot version 2"),
        (cbor2.dumps(["raftkv-kv", 1, -1, 0, 0]), "bad revision"),
        (cbor2.dumps(["raftkv-kv", 1, 0, "x", 0]), "bad applied index"),
        (header(count=2) + record(), "undecodable"),  # truncated: a record is missing
        (header() + record()[:-1], "undecodable"),
        (header() + record() + b"\x00", "trailing data"),
        (header() + b"\x01", "array of 5 items"),
        (header() + record(key=b""), "non-empty key"),
        (header() + cbor2.dumps(["k", b"v", 1, 1, 1]), "non-empty key"),
        (header() + record(mod=6), "inconsistent revisions"),
        (header() + record(create=2, mod=1), "inconsistent revisions"),
        (header() + record(create=0, mod=0), "inconsistent revisions"),
        (header() + record(version=0), "inconsistent revisions"),
        (header() + record(create=1, mod=2, version=3), "inconsistent revisions"),
        (header() + record(version=True), "bad version"),
        (header(count=2) + record(b"b") + record(b"a"), "ascending"),
        (header(count=2) + record(b"a") + record(b"a"), "ascending"),
    ],
)
def test_damaged_snapshot_is_refused_and_changes_nothing(data: bytes, reason: str) -> None:
    kv = filled()
    before = state(kv)
    with pytest.raises(CorruptSnapshot, match=reason):
        kv.restore(data)
    assert state(kv) == before


def test_hand_built_snapshot_restores() -> None:
    kv = KVStateMachine()
    kv.restore(header(count=2) + record(b"a") + record(b"b", create=2, mod=5, version=2))
    assert state(kv) == (
        5,
        7,
        (KeyValue(b"a", b"v", 1, 1, 1), KeyValue(b"b", b"v", 2, 5, 2)),
    )
    # The next put continues the restored revision counter.
    assert kv.apply(8, encode_put(b"c", b"v")).revision == 6  # type: ignore[union-attr]


# -- many keys: records are checked a batch at a time -------------------------------------------


def v4(records: list[list[object]], changes: list[list[object]], revision: int) -> bytes:
    """A hand-built snapshot of the current version: key records, change records, no leases,
    auth disabled."""
    head = ["raftkv-kv", 4, revision, revision, 0, len(records), len(changes), 0]
    items = [head, *records, *changes, [False, b"", 0, 0, 0]]
    return b"".join(cbor2.dumps(item) for item in items)


def plain(n: int = 300) -> tuple[list[list[object]], list[list[object]]]:
    """``n`` keys, each put once at its own revision."""
    records: list[list[object]] = [[b"k%04d" % i, b"v", i + 1, i + 1, 1, 0] for i in range(n)]
    changes: list[list[object]] = [[i + 1, b"k%04d" % i] for i in range(n)]
    return records, changes


def test_many_plain_keys_restore() -> None:
    records, changes = plain()
    kv = KVStateMachine()
    kv.restore(v4(records, changes, 300))
    assert len(kv) == 300 and kv.revision == 300
    assert kv.get(b"k0150") == KeyValue(b"k0150", b"v", 151, 151, 1)
    assert kv.get(b"k0150", revision=150) is None


def test_plain_and_other_records_mixed_in_one_batch_restore() -> None:
    kv = KVStateMachine()
    index = 0
    for i in range(400):
        index += 1
        kv.apply(index, encode_put(b"k%04d" % i, b"v%d" % i))
    for i in range(0, 400, 7):  # some keys with an older version, some deleted
        index += 1
        kv.apply(index, encode_put(b"k%04d" % i, b"again"))
    for i in range(3, 400, 11):
        index += 1
        kv.apply(index, encode_delete(b"k%04d" % i))
    copy = KVStateMachine()
    copy.restore(kv.snapshot())
    assert state(copy) == state(kv)
    assert copy.snapshot() == kv.snapshot()
    assert copy.get(b"k0007", revision=8) == kv.get(b"k0007", revision=8)
    assert list(copy.changes_since(1)) == list(kv.changes_since(1))


@pytest.mark.parametrize(
    ("at", "damaged", "reason"),
    [
        (150, [b"k0149", b"v", 151, 151, 1, 0], "ascending"),
        (150, [b"k0150", b"v", 151, 151, True, 0], "bad version"),
        (150, [b"k0150", b"v", 151, 301, 1, 0], "inconsistent revisions"),
        (150, [b"k0150", b"v", 151, 151, 2, 0], "inconsistent revisions"),
        (150, [b"k0150", b"v", 0, 151, 1, 0], "inconsistent revisions"),
        (150, [b"k0150", b"v", 152, 151, 1, 0], "inconsistent revisions"),
        (150, [b"k0150", b"v", 151, 151, 1, -1], "bad lease"),
        (150, [b"k0150", "v", 151, 151, 1, 0], "must be bytes"),
        (150, [b"k0150", b"v", 151.0, 151, 1, 0], "bad create_revision"),
        (0, [b"", b"v", 1, 1, 1, 0], "non-empty key"),
        (299, [b"k0299", b"v", 300, 300, 1, 7], "not in snapshot"),  # no such lease
    ],
)
def test_a_damaged_record_among_many_is_refused(
    at: int, damaged: list[object], reason: str
) -> None:
    records, changes = plain()
    records[at] = damaged
    kv = filled()
    before = state(kv)
    with pytest.raises(CorruptSnapshot, match=reason):
        kv.restore(v4(records, changes, 300))
    assert state(kv) == before


@pytest.mark.parametrize(
    ("damaged", "reason"),
    [
        ([151, b"k0151"], "names no version"),
        ([151, b"k0150", b"k0150"], "names no version"),
        ([151, b""], "non-empty key"),
        ([151, "k0150"], "non-empty key"),
    ],
)
def test_a_damaged_change_record_is_refused(damaged: list[object], reason: str) -> None:
    records, changes = plain()
    changes[150] = damaged
    with pytest.raises(CorruptSnapshot, match=reason):
        KVStateMachine().restore(v4(records, changes, 300))
