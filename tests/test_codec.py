"""The wire codec round-trips every message and refuses anything malformed with CodecError."""

import contextlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkv import _codec
from raftkv.core import (
    AppendEntries,
    AppendEntriesResponse,
    ConfState,
    Entry,
    EntryType,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    SnapshotMetadata,
    TimeoutNow,
)

ids = st.integers(1, 9)
terms = st.integers(0, 2**40)
entries = st.builds(Entry, terms, terms, st.sampled_from(list(EntryType)), st.binary(max_size=16))
conf = st.builds(
    lambda v, learners: ConfState.of(v, set(learners) - set(v)),
    st.sets(ids, max_size=4),
    st.sets(ids, max_size=3),
)
snapshots = st.builds(
    Snapshot, st.builds(SnapshotMetadata, terms, terms, conf), st.binary(max_size=64)
)
ctx = st.binary(max_size=8)
messages = st.one_of(
    st.builds(AppendEntries, terms, ids, ids, terms, terms, st.tuples(entries, entries), terms),
    st.builds(AppendEntriesResponse, terms, ids, ids, terms, st.booleans(), terms, terms),
    st.builds(Heartbeat, terms, ids, ids, terms, ctx),
    st.builds(HeartbeatResponse, terms, ids, ids, ctx),
    st.builds(RequestVote, terms, ids, ids, terms, terms, st.booleans(), st.booleans()),
    st.builds(RequestVoteResponse, terms, ids, ids, st.booleans(), st.booleans()),
    st.builds(InstallSnapshot, terms, ids, ids, snapshots),
    st.builds(TimeoutNow, terms, ids, ids, terms),
    st.builds(ReadIndexRequest, terms, ids, ids, ctx),
    st.builds(ReadIndexResponse, terms, ids, ids, terms, ctx, st.booleans()),
    st.builds(Propose, terms, ids, ids, st.tuples(entries)),
)


@given(messages)
def test_every_message_round_trips(m: object) -> None:
    wire = _codec.dumps(_codec.encode_message(m))  # type: ignore[arg-type]
    assert _codec.decode_message(_codec.loads(wire)) == m


@given(messages, st.data())
def test_a_mangled_message_is_refused_or_decodes_to_a_valid_message(m: object, data) -> None:
    fields = _codec.encode_message(m)  # type: ignore[arg-type]
    i = data.draw(st.integers(0, len(fields) - 1))
    fields[i] = data.draw(st.one_of(st.none(), st.text(max_size=3), st.integers(-5, 5), ctx))
    try:
        decoded = _codec.decode_message(fields)
    except _codec.CodecError:
        return
    assert type(decoded).__name__ in {t.__name__ for t in _codec._CODECS}


@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_codec_error(blob: bytes) -> None:
    with contextlib.suppress(_codec.CodecError):
        _codec.decode_message(_codec.loads(blob))


@pytest.mark.parametrize(
    "bad",
    [
        [],
        [99, 1, 1, 2],
        [1, 1, 0, 2, 0, 0, [], 0],  # src 0 is not a node
        [1, -1, 1, 2, 0, 0, [], 0],
        [1, 1, 1, 2, 0, 0, [[1, 1, 7, b""]], 0],  # unknown entry type
        [1, 1, 1, 2, 0, 0, "entries", 0],
        [5, 1, 1, 2, 0, 0, "yes", False],
        [1, True, 1, 2, 0, 0, [], 0],  # a bool is not an int
        [7, 1, 1, 2, [[1, 1, [[2, 2], []]], b""]],  # unsorted voters
    ],
)
def test_malformed_messages_are_refused(bad: list) -> None:
    with pytest.raises(_codec.CodecError):
        _codec.decode_message(bad)


def test_garbage_cbor_is_a_codec_error() -> None:
    with pytest.raises(_codec.CodecError):
        _codec.loads(b"\xff\x00garbage")
    assert _codec.loads(cbor2.dumps([1])) == [1]
