"""KeyMap: behaves as a dict of bytes keys, and no part of it holds more than its share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkv.kv._keymap import SHARD_BITS, KeyMap

keys = st.binary(max_size=4)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, st.integers()),
        st.tuples(st.just("del"), keys, st.none()),
        st.tuples(st.just("pop"), keys, st.integers()),
        st.tuples(st.just("setdefault"), keys, st.integers()),
    ),
    max_size=60,
)


@given(ops)
def test_a_keymap_answers_as_a_dict_does(script: list[tuple[str, bytes, int | None]]) -> None:
    m: KeyMap[int] = KeyMap()
    d: dict[bytes, int] = {}
    for op, key, arg in script:
        if op == "set":
            assert arg is not None
            m[key] = d[key] = arg
        elif op == "del":
            if key in d:
                del m[key], d[key]
        elif op == "pop":
            assert m.pop(key, arg) == d.pop(key, arg)
        else:
            assert arg is not None
            assert m.setdefault(key, arg) == d.setdefault(key, arg)
        assert (key in m) == (key in d)
        assert m.get(key) == d.get(key)
        assert m.get(key, -1) == d.get(key, -1)
    assert len(m) == len(d)
    assert dict(m.items()) == d
    assert sorted(m) == sorted(d)
    for key, value in d.items():
        assert m[key] == value


def test_put_many_sets_every_pair() -> None:
    m: KeyMap[int] = KeyMap()
    m.put_many([b"a", b"b", b"c"], iter([1, 2, 3]))
    m.put_many((b"%d" % i for i in range(1000)), range(1000))
    assert dict(m.items()) == {b"a": 1, b"b": 2, b"c": 3} | {b"%d" % i: i for i in range(1000)}


def test_a_missing_key_raises_key_error() -> None:
    m: KeyMap[int] = KeyMap()
    with pytest.raises(KeyError):
        m[b"x"]
    with pytest.raises(KeyError):
        m.pop(b"x")
    with pytest.raises(KeyError):
        del m[b"x"]
    assert b"x" not in m and 1 not in m


def test_keys_spread_over_the_shards() -> None:
    """What makes growth cheap: a dict that grows copies one shard, a small part of the keys."""
    m: KeyMap[None] = KeyMap()
    count = 100_000
    m.put_many([b"key-%012d" % i for i in range(count)], [None] * count)
    largest = max(map(len, m.shards))
    assert largest < 2 * count >> SHARD_BITS
