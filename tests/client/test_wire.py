"""The wire formats shared by client and server."""

from urllib.parse import unquote_to_bytes

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkv.client import Member, Position
from raftkv.client._wire import (
    member_from_json,
    parse_error_body,
    parse_position,
    parse_retry_after,
)
from raftkv.kv import (
    KeyValue,
    WireFormatError,
    encode_etag,
    encode_key_path,
    key_value_from_json,
    key_value_to_json,
    parse_etag,
)

revisions = st.integers(0, 2**63 - 1)


@given(st.binary(min_size=1, max_size=40))
def test_key_paths_survive_url_normalisation(key: bytes) -> None:
    path = "/v1/kv/" + encode_key_path(key)
    url = httpx.URL("http://h:1" + path)
    assert url.raw_path.decode() == path  # nothing collapsed or re-encoded by httpx
    assert unquote_to_bytes(path.removeprefix("/v1/kv/")) == key


def test_key_paths_read_naturally() -> None:
    assert encode_key_path(b"app/config/a") == "app/config/a"
    assert encode_key_path(b"a b") == "a%20b"
    assert encode_key_path(b"../x/.") == "%2E%2E/x/%2E"
    assert encode_key_path(b"a.b/.c") == "a.b/.c"


@given(st.builds(KeyValue, st.binary(min_size=1), st.binary(), revisions, revisions, revisions))
def test_key_values_round_trip(kv: KeyValue) -> None:
    assert key_value_from_json(key_value_to_json(kv)) == kv


def test_key_values_are_text_when_they_can_be() -> None:
    assert key_value_to_json(KeyValue(b"k", "\u00e9".encode(), 1, 2, 3)) == {
        "key": "k",
        "value": "\u00e9",
        "create_revision": 1,
        "mod_revision": 2,
        "version": 3,
    }
    assert key_value_to_json(KeyValue(b"\xff", b"v", 1, 1, 1)) == {
        "key_b64": "/w==",
        "value": "v",
        "create_revision": 1,
        "mod_revision": 1,
        "version": 1,
    }


@pytest.mark.parametrize(
    "obj",
    [
        [],
        {"value": "v", "create_revision": 1, "mod_revision": 1, "version": 1},
        {
            "key": "k",
            "key_b64": "aw==",
            "value": "v",
            "create_revision": 1,
            "mod_revision": 1,
            "version": 1,
        },
        {"key_b64": "!!", "value": "v", "create_revision": 1, "mod_revision": 1, "version": 1},
        {"key": "k", "value": "v", "create_revision": -1, "mod_revision": 1, "version": 1},
        {"key": "k", "value": "v", "create_revision": 1, "mod_revision": "1", "version": 1},
    ],
)
def test_malformed_key_values(obj: object) -> None:
    with pytest.raises(WireFormatError):
        key_value_from_json(obj)


def test_members() -> None:
    assert member_from_json({"id": 2, "peer_url": "http://h:1"}) == Member(2, "http://h:1")
    full = {"id": 2, "peer_url": "u", "client_url": "c", "voter": False, "leader": True, "x": 1}
    assert member_from_json(full) == Member(2, "u", "c", False, True)
    bad: object
    for bad in ([], {"id": 0, "peer_url": "u"}, {"id": 1}, {"id": 1, "peer_url": "u", "voter": 1}):
        with pytest.raises(WireFormatError):
            member_from_json(bad)


def test_etags() -> None:
    assert encode_etag(42) == '"42"'
    assert parse_etag('"42"') == 42
    assert parse_etag('W/"42"') == 42
    for bad in (None, "", "42", '"x"', '"-1"', '"1" "2"'):
        assert parse_etag(bad) is None


def test_positions_and_retry_after() -> None:
    assert parse_position(httpx.Headers({"X-Raft-Index": "7", "X-Raft-Term": "2"})) == Position(
        7, 2
    )
    assert parse_position(httpx.Headers({"X-Raft-Index": "7"})) is None
    assert parse_position(httpx.Headers({"X-Raft-Index": "x", "X-Raft-Term": "2"})) is None
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    for bad in (None, "soon", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "nan"):
        assert parse_retry_after(bad) is None


def test_error_bodies() -> None:
    assert parse_error_body(b'{"error": "no leader", "detail": "election"}') == (
        "no leader",
        "election",
    )
    assert parse_error_body(b'{"error": 5}') == (None, None)
    assert parse_error_body(b"plain words\n") == (None, "plain words")
    assert parse_error_body(b"") == (None, None)
    assert parse_error_body(b"\xff") == (None, "\ufffd")


def test_a_leased_key_value_carries_its_lease_both_ways() -> None:
    kv = KeyValue(b"k", b"v", 1, 2, 1, lease=9)
    assert key_value_to_json(kv)["lease"] == 9
    assert key_value_from_json(key_value_to_json(kv)) == kv
    assert "lease" not in key_value_to_json(KeyValue(b"k", b"v", 1, 2, 1))
