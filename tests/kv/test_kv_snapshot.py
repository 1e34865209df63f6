"""Snapshots: streamed out, restored whole or from a stream, refused when damaged."""

import io
from collections.abc import Callable

import cbor2
import pytest

from raftkv import CorruptSnapshot
from raftkv.kv import (
    CompactCommand,
    KeyValue,
    KVStateMachine,
    encode_command,
    encode_delete,
    encode_put,
)


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


def test_chunks_concatenate_to_a_snapshot_of_the_same_state() -> None:
    kv = filled(value_bytes=300)
    chunks = list(kv.snapshot_chunks(chunk_bytes=1000))
    assert len(chunks) >= 8
    assert all(len(c) < 1000 + 400 for c in chunks)  # about chunk_bytes: one record over at most
    # A block of keys ends with its chunk, so the bytes depend on the chunk size (and only on it).
    assert b"".join(chunks) == b"".join(kv.snapshot_chunks(chunk_bytes=1000))
    copy = KVStateMachine()
    copy.restore(b"".join(chunks))
    assert state(copy) == state(kv)
    assert copy.snapshot() == kv.snapshot()


def test_chunks_reflect_the_state_when_asked_for() -> None:
    kv = filled()
    expected = b"".join(kv.snapshot_chunks(chunk_bytes=256))
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


# A damaged key among plain ones, where it is, and what the refusal names.
DAMAGED_KEYS = [
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
]


@pytest.mark.parametrize(("at", "damaged", "reason"), DAMAGED_KEYS)
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


# The change index must name exactly the versions after the compaction point, each once.
MISMATCHED_CHANGES = [
    ("a change record left out", lambda c: c.pop(150)),
    (
        "a change naming a version of another revision",
        lambda c: c.__setitem__(150, [151, b"k0151"]),
    ),
    ("a key named twice", lambda c: c[150].append(b"k0150")),
    ("a version named by a second change", lambda c: c[151].append(b"k0150")),
]


@pytest.mark.parametrize(
    ("what", "damage"), MISMATCHED_CHANGES, ids=[m[0] for m in MISMATCHED_CHANGES]
)
def test_a_change_index_that_does_not_match_the_versions_is_refused(
    what: str, damage: Callable[[list[list[object]]], object]
) -> None:
    records, changes = plain()
    damage(changes)
    with pytest.raises(CorruptSnapshot, match="change index does not name exactly"):
        KVStateMachine().restore(v4(records, changes, 300))


def test_a_compacted_history_restores_with_blocks_across_the_compaction_point() -> None:
    kv = KVStateMachine()
    for i in range(300):
        kv.apply(i + 1, encode_put(b"k%04d" % i, b"v"))
    kv.apply(301, encode_put(b"k0010", b"again"))  # an older version at or below the point
    kv.apply(302, encode_command(CompactCommand(150)))
    kv.apply(303, encode_put(b"k0020", b"again"))
    copy = KVStateMachine()
    copy.restore(kv.snapshot())
    assert state(copy) == state(kv) and copy.compact_revision == 150
    assert list(copy.changes_since(151)) == list(kv.changes_since(151))
    # A change record of a revision the block holds after the point, left out: refused.
    written = items(kv.snapshot())
    head = written[0]
    dropped = [v for v in written if not (isinstance(v, list) and v[:1] == [200])]
    head[6] -= 1  # type: ignore[index]
    with pytest.raises(CorruptSnapshot, match="change index does not name exactly"):
        KVStateMachine().restore(b"".join(cbor2.dumps(v) for v in dropped))


# -- version 5: consecutive keys of one version are written as blocks, a column per field ---


def items(snapshot: bytes) -> list[object]:
    decoder = cbor2.CBORDecoder(io.BytesIO(snapshot))
    out = []
    while True:
        try:
            out.append(decoder.decode())
        except cbor2.CBORDecodeEOF:
            return out


def v5(keys: list[object], changes: list[list[object]], revision: int) -> bytes:
    """A hand-built snapshot with blocks: ``keys`` are blocks and records, in order."""
    count = sum(len(k[0]) if isinstance(k[0], list) else 1 for k in keys)  # type: ignore[index, arg-type]
    head = ["raftkv-kv", 5, revision, revision, 0, count, len(changes), 0]
    return b"".join(cbor2.dumps(item) for item in [head, *keys, *changes, [False, b"", 0, 0, 0]])


def block(records: list[list[object]]) -> list[list[object]]:
    return [list(column) for column in zip(*records, strict=True)]


def test_plain_keys_are_written_in_blocks_and_the_others_as_records() -> None:
    kv = KVStateMachine()
    for i in range(300):
        kv.apply(i + 1, encode_put(b"k%04d" % i, b"v"))
    kv.apply(301, encode_put(b"k0100", b"again"))  # two versions: a record of its own
    kv.apply(302, encode_delete(b"k0200"))  # a tombstone: a record of its own
    written = items(kv.snapshot())
    assert written[0][:2] == ["raftkv-kv", 5]  # type: ignore[index]
    blocks = [v for v in written[1:] if isinstance(v, list) and isinstance(v[0], list)]
    records = [v for v in written[1:] if isinstance(v, list) and v[0] in (b"k0100", b"k0200")]
    assert [len(b[0]) for b in blocks] == [100, 99, 99]  # type: ignore[index]
    assert blocks[0][0][:2] == [b"k0000", b"k0001"] and blocks[0][2][:2] == [1, 2]  # type: ignore[index]
    assert records[0][:6] == [b"k0100", b"v", 101, 101, 1, 0] and len(records[0]) == 11  # type: ignore[index]
    copy = KVStateMachine()
    copy.restore(kv.snapshot())
    assert state(copy) == state(kv)
    assert copy.get(b"k0100", revision=200) == kv.get(b"k0100", revision=200)


def test_blocks_split_across_chunks_restore() -> None:
    kv = KVStateMachine()
    for i in range(2000):
        kv.apply(i + 1, encode_put(b"k%04d" % i, b"v" * (i % 50)))
    chunks = list(kv.snapshot_chunks(chunk_bytes=700))
    assert len(chunks) > 100
    assert all(len(c) < 700 + 400 for c in chunks)
    copy = KVStateMachine()
    copy.restore(b"".join(chunks))
    assert state(copy) == state(kv)
    copy._history._keys._check()  # the reader's lists of keys make a valid SortedList


def test_a_hand_built_snapshot_of_blocks_and_records_restores() -> None:
    records, changes = plain()
    keys: list[object] = [block(records[:150]), records[150], block(records[151:])]
    kv = KVStateMachine()
    kv.restore(v5(keys, changes, 300))
    assert len(kv) == 300 and kv.revision == 300
    assert kv.get(b"k0150") == KeyValue(b"k0150", b"v", 151, 151, 1)
    assert kv.get(b"k0299") == KeyValue(b"k0299", b"v", 300, 300, 1)


@pytest.mark.parametrize(("at", "damaged", "reason"), DAMAGED_KEYS)
def test_a_damaged_key_in_a_block_is_refused(at: int, damaged: list[object], reason: str) -> None:
    records, changes = plain()
    records[at] = damaged
    kv = filled()
    before = state(kv)
    with pytest.raises(CorruptSnapshot, match=reason):
        kv.restore(v5([block(records[:200]), block(records[200:])], changes, 300))
    assert state(kv) == before


def test_a_tombstone_in_a_block_is_read_as_its_record_would_be() -> None:
    records, changes = plain(3)
    records[1] = [b"k0001", None, 0, 2, 0, 0]
    copy = KVStateMachine()
    copy.restore(v5([block(records)], changes, 3))
    assert [kv.key for kv in copy.range().kvs] == [b"k0000", b"k0002"]
    assert copy.get(b"k0001", revision=1) is None


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ("ragged", "six columns of the same length"),
        ("column not a list", "six columns of the same length"),
        ("over the key count", "more keys than the snapshot has"),
        ("empty", "more keys than the snapshot has, or none"),
    ],
)
def test_a_malformed_block_is_refused(shape: str, reason: str) -> None:
    records, changes = plain(10)
    cols = block(records)
    if shape == "ragged":
        cols[3] = cols[3][:-1]
    elif shape == "column not a list":
        cols[4] = b"xxxxxxxxxx"  # type: ignore[call-overload]
    data = v5([cols], changes, 10)
    if shape == "over the key count":
        data = v5([block(records[:5]), cols], changes, 10)  # 15 keys where the head says 15...
        head = cbor2.dumps(["raftkv-kv", 5, 10, 10, 0, 10, 10, 0])  # ...made to say 10
        data = head + data[len(cbor2.dumps(["raftkv-kv", 5, 10, 10, 0, 15, 10, 0])) :]
    elif shape == "empty":
        data = v5([[[], [], [], [], [], []], cols], changes, 10)
    kv = filled()
    before = state(kv)
    with pytest.raises(CorruptSnapshot, match=reason):
        kv.restore(data)
    assert state(kv) == before


def test_keys_created_while_a_snapshot_is_read_cost_it_bounded_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bulk load during a snapshot adds keys the snapshot skips (they are newer): each step
    of the snapshot looks at a bounded batch of them, and those after the last key it saw at
    its start are not looked at at all; the snapshot is the state when it was asked for."""
    from raftkv.kv._history import HistoryView

    kv = KVStateMachine()
    index = 0
    for i in range(100):
        index += 1
        kv.apply(index, encode_put(b"k%04d" % (i * 100), b"v"))
    expected = b"".join(kv.snapshot_chunks(chunk_bytes=256))
    looked = [0]
    versions_of = HistoryView._versions_of

    def counting(view: HistoryView, key: bytes) -> object:
        looked[0] += 1
        return versions_of(view, key)

    monkeypatch.setattr(HistoryView, "_versions_of", counting)
    chunks = kv.snapshot_chunks(chunk_bytes=256)
    got = [next(chunks)]
    for i in range(3000):  # between the snapshot's keys, and after the last of them
        index += 1
        kv.apply(index, encode_put(b"k0050%04d" % i, b"new"))
        index += 1
        kv.apply(index, encode_put(b"z%04d" % i, b"new"))
    per_step = []
    for chunk in chunks:
        per_step.append(looked[0])
        looked[0] = 0
        got.append(chunk)
    assert b"".join(got) == expected
    assert max(per_step) <= 512 + 100
    assert sum(per_step) < 100 + 3000 + 600  # the 3000 keys after the last one: never looked at
