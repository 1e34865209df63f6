"""Log-suffix rules shared by the storages: an entry at index i replaces every entry >= i."""

from __future__ import annotations

from collections.abc import Sequence

from ..core import Entry

__all__ = ["check_batch", "splice"]


def splice(log: list[Entry], new: Sequence[Entry]) -> None:
    """Append ``new`` to the contiguous ``log``, first dropping every entry >= ``new[0].index``.

    ``ValueError`` if ``new`` would leave a gap after ``log``.
    """
    if not new:
        return
    if log:
        cut = new[0].index - log[0].index
        if cut > len(log):
            raise ValueError(f"gap: entry {new[0].index} after {log[-1].index}")
        del log[max(cut, 0) :]
    log.extend(new)


def check_batch(entries: Sequence[Entry], last_index: int) -> None:
    """``ValueError`` unless ``entries`` are ascending, contiguous and follow ``last_index``.

    Only the ends are checked: the core hands over contiguous runs and this is the hot path.
    """
    if not entries:
        return
    first, last = entries[0].index, entries[-1].index
    if first < 1 or last - first + 1 != len(entries):
        raise ValueError(f"entries {first}..{last} are not a contiguous run of {len(entries)}")
    if first > last_index + 1:
        raise ValueError(f"gap: entry {first} after last index {last_index}")
