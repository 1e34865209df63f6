"""SortedKeys against the obvious model: a sorted list of a set."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.kv import _sortedkeys
from raftkv.kv._sortedkeys import SortedKeys

KEYS = st.binary(min_size=1, max_size=3)
OPS = st.lists(st.tuples(st.booleans(), KEYS), max_size=400)


def _check(keys: SortedKeys, model: set[bytes], probes: list[bytes]) -> None:
    expected = sorted(model)
    assert list(keys) == expected and len(keys) == len(expected)
    for p in probes:
        assert list(keys.iter_from(p)) == expected[bisect_left(expected, p) :]
        assert list(keys.iter_from(p, inclusive=False)) == expected[bisect_right(expected, p) :]


@settings(max_examples=200)
@given(OPS, st.lists(KEYS, max_size=10), st.integers(2, 5))
def test_matches_a_sorted_set(
    ops: list[tuple[bool, bytes]], probes: list[bytes], load: int
) -> None:
    old = _sortedkeys.LOAD
    _sortedkeys.LOAD = load  # tiny chunks: splits and empty chunks happen all the time
    try:
        keys, model = SortedKeys(), set()
        for add, key in ops:
            if add and key not in model:
                keys.add(key)
                model.add(key)
            elif not add and key in model:
                keys.remove(key)
                model.discard(key)
        _check(keys, model, [*probes, b"", b"\xff" * 4])
        copy = keys.copy()
        if model:
            keys.remove(min(model))  # the copy is independent
        _check(copy, model, probes)
        _check(SortedKeys.from_sorted(sorted(model)), model, probes)
    finally:
        _sortedkeys.LOAD = old
