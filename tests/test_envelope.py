"""The runtime's envelopes: proposals and snapshots as they sit in the log and on disk."""

from __future__ import annotations

import pytest

from raftkv._codec import CodecError, dumps
from raftkv._envelope import (
    MemberTables,
    decode_proposal,
    decode_snapshot,
    encode_proposal,
    encode_snapshot,
)


def test_a_proposal_keeps_its_origin_and_sequence() -> None:
    assert decode_proposal(encode_proposal(3, 99, b"cmd")) == (3, 99, b"cmd")
    assert decode_proposal(b"") is None  # a leader's no-op


# Sizes on both sides of every CBOR length form: inline, 1, 2, 4 bytes.
@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 65535, 65536, 100_000])
def test_a_snapshot_built_from_parts_is_the_plain_cbor_of_the_whole(size: int) -> None:
    app = bytes(range(256)) * (size // 256) + bytes(size % 256)
    members, urls = {1: "http://a:1", 2: "http://b:2"}, {1: "http://a:3"}
    tables = MemberTables(members, urls, frozenset({5, 3}))
    parts = [app[: size // 3], b"", app[size // 3 :]]
    data = encode_snapshot(tables, parts)
    assert data == dumps([2, members, app, urls, [3, 5]])
    assert decode_snapshot(data) == (tables, app)


def test_a_version_1_snapshot_still_reads() -> None:
    members, urls = {1: "http://a:1"}, {1: "http://a:3"}
    data = dumps([1, members, b"app", urls])  # before removed ids were kept
    assert decode_snapshot(data) == (MemberTables(members, urls), b"app")


def test_a_snapshot_that_is_not_ours_is_refused() -> None:
    with pytest.raises(CodecError):
        decode_snapshot(encode_proposal(1, 1, b"x"))
