"""Scenario setup: durable logs written by hand, for figure-style scenarios (Raft paper
Figures 7 and 8)."""

from __future__ import annotations

from collections.abc import Sequence

from raftkv.core import Entry, HardState, MemoryLogStore

__all__ = ["figure_log"]


def figure_log(
    terms: Sequence[int],
    others: Sequence[MemoryLogStore],
    old_commit: int,
    *,
    term: int | None,
    vote: int | None,
    commit: int | None,
) -> MemoryLogStore:
    """A store whose entries have ``terms`` (index 1 first). Entries some store of ``others``
    holds at the same (index, term) are copied from it, so bootstrap configuration entries and
    shared history stay identical; the others get the payload ``t<term>``. The hard state's
    term is at least the last entry's; its commit defaults to ``old_commit`` within the log."""
    entries = [
        _known_entry(others, index, t) or Entry(t, index, data=f"t{t}".encode())
        for index, t in enumerate(terms, 1)
    ]
    store = MemoryLogStore()
    store.append(entries)
    last_term = terms[-1] if terms else 0
    hs_term = max(term or 0, last_term, 1)
    hs_commit = min(old_commit, len(terms)) if commit is None else commit
    store.set_hard_state(HardState(hs_term, vote, hs_commit))
    return store


def _known_entry(stores: Sequence[MemoryLogStore], index: int, term: int) -> Entry | None:
    for store in stores:
        if store.first_index() <= index <= store.last_index() and store.term(index) == term:
            return store.entries(index, index + 1)[0]
    return None
