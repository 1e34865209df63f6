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
# As the core makes them: a forwarded entry has term 0 (the leader stamps it), any index.
unstamped = st.builds(
    Entry, st.just(0), terms, st.sampled_from(list(EntryType)), st.binary(max_size=16)
)
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
    st.builds(
        Propose, terms, ids, ids, st.lists(unstamped, min_size=1, max_size=3).map(tuple), terms
    ),
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


# -- Propose across versions -------------------------------------------------------------------


def _previous_version_decode_propose(v: list) -> tuple[int, int, int, tuple[Entry, ...]]:
    """How a node of the previous version decoded a Propose: [11, term, src, dst, [entries]]."""
    tag, term, src, dst, *fields = v
    assert tag == 11
    (items,) = _codec._list(fields, 1)
    return term, src, dst, tuple(_codec.decode_entry(e) for e in items)


def test_a_propose_keeps_the_shape_the_previous_version_reads() -> None:
    m = Propose(0, 2, 1, (Entry(0, 0, EntryType.NORMAL, b"x=1"), Entry(0, 0, data=b"y")), 7)
    wire = _codec.loads(_codec.dumps(_codec.encode_message(m)))
    term, src, dst, old_entries = _previous_version_decode_propose(wire)
    assert (term, src, dst) == (0, 2, 1)
    # The previous version's leader restamps term and index; it sees the same commands.
    assert [(e.type, e.data) for e in old_entries] == [(e.type, e.data) for e in m.entries]
    assert _codec.decode_message(wire) == m


def test_a_propose_of_the_previous_version_decodes_with_sent_term_0() -> None:
    old_wire = [11, 0, 2, 1, [[0, 0, int(EntryType.NORMAL), b"x=1"]]]
    decoded = _codec.decode_message(old_wire)
    assert decoded == Propose(0, 2, 1, (Entry(0, 0, EntryType.NORMAL, b"x=1"),), 0)


def test_a_propose_whose_entries_disagree_on_the_sent_term_is_refused() -> None:
    bad = [11, 0, 2, 1, [[3, 0, 0, b"a"], [4, 0, 0, b"b"]]]
    with pytest.raises(_codec.CodecError, match="disagree"):
        _codec.decode_message(bad)
