"""cbor2 encoding of the core's values: entries, hard state, snapshots and wire messages.

Every encoded value is a CBOR array whose shape is fixed per type; a message starts with a
small integer tag. ``decode_*`` functions treat their input as hostile: anything that is not
exactly the expected shape raises ``CodecError`` (never ``KeyError``/``TypeError``), so a
transport can refuse a bad frame without it ever reaching ``RawNode.step``.

Format version: ``CODEC_VERSION``; it is carried by the peer handshake and the WAL header,
and bumped on any incompatible change (peers of different versions then refuse each other, and
a WAL of another version does not open), so compatible changes are made without a bump:

* ``Propose.sent_term`` (the term a follower forwarded its proposals in) travels in the term
  slot of each forwarded entry, which was always 0 on the wire (the leader assigns entries
  their term and index): ``[11, 0, src, dst, [[sent_term, 0, type, data], ...]]``. A node of
  the previous version decodes the new form unchanged and ignores the slot, as it always did;
  the previous form decodes as ``sent_term`` 0, which the leader appends unchecked (that sender
  makes its callers no promise that needs the check). Entries of one message that disagree on
  the slot are refused as malformed; an empty one (never sent) carries no sent term.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cbor2

from .core import (
    AppendEntries,
    AppendEntriesResponse,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    SnapshotMetadata,
    TimeoutNow,
)

__all__ = [
    "CODEC_VERSION",
    "CodecError",
    "decode_entry",
    "decode_hard_state",
    "decode_message",
    "decode_snapshot_metadata",
    "dumps",
    "encode_entry",
    "encode_hard_state",
    "encode_message",
    "encode_snapshot_metadata",
    "loads",
]

CODEC_VERSION = 1


class CodecError(ValueError):
    """Bytes that do not decode to a well-formed value."""


def dumps(obj: Any) -> bytes:
    return cbor2.dumps(obj)


def loads(data: bytes) -> Any:
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise CodecError(f"undecodable CBOR: {exc}") from None


# -- checked field readers -------------------------------------------------------------------


def _int(v: Any, lo: int = 0) -> int:
    if type(v) is not int or v < lo or v >= 1 << 63:
        raise CodecError(f"expected an integer >= {lo}, got {v!r:.40}")
    return v


def _node(v: Any) -> int:
    return _int(v, 1)


def _opt_node(v: Any) -> int | None:
    return None if v is None else _node(v)


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise CodecError(f"expected a boolean, got {v!r:.40}")
    return v


def _bytes(v: Any) -> bytes:
    if type(v) is not bytes:
        raise CodecError(f"expected bytes, got {type(v).__name__}")
    return v


def _list(v: Any, n: int | None = None) -> list[Any]:
    if type(v) is not list or (n is not None and len(v) != n):
        raise CodecError(f"expected an array of {n} items" if n else "expected an array")
    return v


# -- values ----------------------------------------------------------------------------------


def encode_entry(e: Entry) -> list[Any]:
    return [e.term, e.index, int(e.type), e.data]


def decode_entry(v: Any) -> Entry:
    term, index, kind, data = _list(v, 4)
    try:
        etype = EntryType(_int(kind))
    except ValueError:
        raise CodecError(f"unknown entry type {kind!r}") from None
    return Entry(_int(term), _int(index), etype, _bytes(data))


def encode_hard_state(hs: HardState) -> list[Any]:
    return [hs.term, hs.vote, hs.commit]


def decode_hard_state(v: Any) -> HardState:
    term, vote, commit = _list(v, 3)
    return HardState(_int(term), _opt_node(vote), _int(commit))


def encode_conf_state(cs: ConfState) -> list[Any]:
    return [list(cs.voters), list(cs.learners)]


def decode_conf_state(v: Any) -> ConfState:
    voters, learners = _list(v, 2)
    try:
        return ConfState(
            tuple(_node(i) for i in _list(voters)), tuple(_node(i) for i in _list(learners))
        )
    except ValueError as exc:
        raise CodecError(f"bad configuration: {exc}") from None


def encode_snapshot_metadata(m: SnapshotMetadata) -> list[Any]:
    return [m.index, m.term, encode_conf_state(m.conf_state)]


def decode_snapshot_metadata(v: Any) -> SnapshotMetadata:
    index, term, cs = _list(v, 3)
    return SnapshotMetadata(_int(index), _int(term), decode_conf_state(cs))


def _encode_snapshot(s: Snapshot) -> list[Any]:
    return [encode_snapshot_metadata(s.metadata), s.data]


def _decode_snapshot(v: Any) -> Snapshot:
    meta, data = _list(v, 2)
    return Snapshot(decode_snapshot_metadata(meta), _bytes(data))


def _entries(v: Any) -> tuple[Entry, ...]:
    return tuple(decode_entry(e) for e in _list(v))


# -- messages --------------------------------------------------------------------------------
# Each message type: (tag, encoder of its fields after term/src/dst, decoder of those fields).

_Enc = Callable[[Any], list[Any]]
_Dec = Callable[[int, int, int, list[Any]], Message]


def _dec_append(t: int, s: int, d: int, f: list[Any]) -> Message:
    prev_index, prev_term, entries, commit = _list(f, 4)
    return AppendEntries(
        t, s, d, _int(prev_index), _int(prev_term), _entries(entries), _int(commit)
    )


def _dec_append_resp(t: int, s: int, d: int, f: list[Any]) -> Message:
    index, reject, hint_index, hint_term = _list(f, 4)
    return AppendEntriesResponse(
        t, s, d, _int(index), _bool(reject), _int(hint_index), _int(hint_term)
    )


def _dec_heartbeat(t: int, s: int, d: int, f: list[Any]) -> Message:
    commit, context = _list(f, 2)
    return Heartbeat(t, s, d, _int(commit), _bytes(context))


def _dec_heartbeat_resp(t: int, s: int, d: int, f: list[Any]) -> Message:
    (context,) = _list(f, 1)
    return HeartbeatResponse(t, s, d, _bytes(context))


def _dec_vote(t: int, s: int, d: int, f: list[Any]) -> Message:
    last_index, last_term, pre_vote, transfer = _list(f, 4)
    return RequestVote(t, s, d, _int(last_index), _int(last_term), _bool(pre_vote), _bool(transfer))


def _dec_vote_resp(t: int, s: int, d: int, f: list[Any]) -> Message:
    reject, pre_vote = _list(f, 2)
    return RequestVoteResponse(t, s, d, _bool(reject), _bool(pre_vote))


def _dec_snapshot(t: int, s: int, d: int, f: list[Any]) -> Message:
    (snap,) = _list(f, 1)
    return InstallSnapshot(t, s, d, _decode_snapshot(snap))


def _dec_timeout_now(t: int, s: int, d: int, f: list[Any]) -> Message:
    (commit,) = _list(f, 1)
    return TimeoutNow(t, s, d, _int(commit))


def _dec_read_req(t: int, s: int, d: int, f: list[Any]) -> Message:
    (context,) = _list(f, 1)
    return ReadIndexRequest(t, s, d, _bytes(context))


def _dec_read_resp(t: int, s: int, d: int, f: list[Any]) -> Message:
    index, context, reject = _list(f, 3)
    return ReadIndexResponse(t, s, d, _int(index), _bytes(context), _bool(reject))


def _enc_propose(m: Propose) -> list[Any]:
    # The sent term rides in each entry's term slot (see the module docstring).
    return [[[m.sent_term, e.index, int(e.type), e.data] for e in m.entries]]


def _dec_propose(t: int, s: int, d: int, f: list[Any]) -> Message:
    (items,) = _list(f, 1)
    entries = _entries(items)
    sent_terms = {e.term for e in entries}
    if len(sent_terms) > 1:
        raise CodecError("the entries of a forwarded proposal disagree on their term")
    sent_term = sent_terms.pop() if sent_terms else 0
    unstamped = tuple(Entry(0, e.index, e.type, e.data) for e in entries)
    return Propose(t, s, d, unstamped, sent_term)


_CODECS: dict[type[Any], tuple[int, _Enc]] = {
    AppendEntries: (
        1,
        lambda m: [m.prev_index, m.prev_term, [encode_entry(e) for e in m.entries], m.commit],
    ),
    AppendEntriesResponse: (2, lambda m: [m.index, m.reject, m.hint_index, m.hint_term]),
    Heartbeat: (3, lambda m: [m.commit, m.context]),
    HeartbeatResponse: (4, lambda m: [m.context]),
    RequestVote: (5, lambda m: [m.last_index, m.last_term, m.pre_vote, m.transfer]),
    RequestVoteResponse: (6, lambda m: [m.reject, m.pre_vote]),
    InstallSnapshot: (7, lambda m: [_encode_snapshot(m.snapshot)]),
    TimeoutNow: (8, lambda m: [m.commit]),
    ReadIndexRequest: (9, lambda m: [m.context]),
    ReadIndexResponse: (10, lambda m: [m.index, m.context, m.reject]),
    Propose: (11, _enc_propose),
}

_DECODERS: dict[int, _Dec] = {
    1: _dec_append,
    2: _dec_append_resp,
    3: _dec_heartbeat,
    4: _dec_heartbeat_resp,
    5: _dec_vote,
    6: _dec_vote_resp,
    7: _dec_snapshot,
    8: _dec_timeout_now,
    9: _dec_read_req,
    10: _dec_read_resp,
    11: _dec_propose,
}


def encode_message(m: Message) -> list[Any]:
    """A message as a CBOR-ready array: [tag, term, src, dst, fields...]."""
    tag, enc = _CODECS[type(m)]
    return [tag, m.term, m.src, m.dst, *enc(m)]


def decode_message(v: Any) -> Message:
    """The message from a decoded CBOR array; ``CodecError`` for anything malformed."""
    items = _list(v)
    if len(items) < 4:
        raise CodecError("message too short")
    tag = items[0]
    decoder = _DECODERS.get(tag) if type(tag) is int else None
    if decoder is None:
        raise CodecError(f"unknown message tag {tag!r:.20}")
    return decoder(_int(items[1]), _node(items[2]), _node(items[3]), items[4:])
