"""``check_locks``: the simulator's lock workload, judged from the committed log and the history.

The workload (``raftkv.testing._locks``): a client acquires by a compare-and-set of register
``lock`` from empty to a holder id unique to the attempt (``c1.3``); its fencing token is the
log index at which that compare-and-set applied. While holding, it writes register ``fenced``
with values tagged by holder and token (``c1.3/t45/1``); it releases by a compare-and-set of
``lock`` from its holder id back to empty. What must hold:

* the committed writes of ``lock`` alternate: a tenure (an acquire at index t, the token) ends
  with the release of its holder before the next one begins: no two tenures overlap;
* every committed write of ``fenced`` lies inside the tenure its token names, by the holder it
  names: seen through the tokens, the tenures never overlap, and the tokens the protected
  register receives never go back;
* every acknowledged acquire names the token of its tenure, tokens strictly increase in the
  order the clients were told they hold the lock, and no client was told so before the previous
  holder had asked to release it (the tenures the clients believed in never overlap in time).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._committed import CommittedLog
from ._lincheck import OpKind

if TYPE_CHECKING:
    from ._clients import ClientOp

__all__ = ["FENCED_KEY", "LOCK_KEY", "LockViolation", "check_locks", "fenced_value"]

LOCK_KEY = "lock"
FENCED_KEY = "fenced"


class LockViolation(AssertionError):
    """The lock workload's history breaks mutual exclusion or fencing."""


@dataclass(slots=True)
class _Tenure:
    token: int
    holder: str
    end: int | None = None  # the index of its release

    def holds(self, index: int) -> bool:
        return self.token < index and (self.end is None or index < self.end)


def fenced_value(holder: str, token: int, n: int) -> str:
    return f"{holder}/t{token}/{n}"


def _parse_fenced(value: str | None) -> tuple[str, int] | None:
    parts = (value or "").split("/")
    if len(parts) != 3 or not parts[1].startswith("t") or not parts[1][1:].isdigit():
        return None
    return parts[0], int(parts[1][1:])


def check_locks(ops: Iterable[ClientOp], committed: CommittedLog) -> int:
    """Raise ``LockViolation`` unless the lock workload held (see the module docstring);
    returns how many tenures the committed log holds."""
    tenures = _tenures(committed)
    _check_fenced(committed, {t.token: t for t in tenures})
    _check_acknowledged(list(ops), {t.token: t for t in tenures})
    return len(tenures)


def _tenures(committed: CommittedLog) -> list[_Tenure]:
    tenures: list[_Tenure] = []
    current: _Tenure | None = None
    for index, _, value in committed.writes(LOCK_KEY):
        if value is not None:
            if current is not None:
                raise LockViolation(
                    f"{value} acquired the lock at {index} while {current.holder} held it "
                    f"(token {current.token}): two tenures overlap"
                )
            current = _Tenure(index, value)
            tenures.append(current)
        else:
            if current is None:
                raise LockViolation(f"the free lock was released at {index}")
            current.end = index
            current = None
    return tenures


def _check_fenced(committed: CommittedLog, by_token: dict[int, _Tenure]) -> None:
    last = 0
    for index, _, value in committed.writes(FENCED_KEY):
        tag = _parse_fenced(value)
        if tag is None:
            raise LockViolation(f"fenced write {value!r} at {index} carries no token")
        holder, token = tag
        tenure = by_token.get(token)
        if tenure is None or tenure.holder != holder or not tenure.holds(index):
            where = "no tenure" if tenure is None else f"{tenure.holder}'s tenure {tenure}"
            raise LockViolation(
                f"fenced write {value!r} committed at {index}, outside its tenure ({where}): "
                "two tenures overlap as the protected register sees them"
            )
        if token < last:
            raise LockViolation(f"fenced write {value!r} at {index} after one of token {last}")
        last = token


def _check_acknowledged(ops: list[ClientOp], by_token: dict[int, _Tenure]) -> None:
    lock_ops = [op for op in ops if op.key == LOCK_KEY and op.kind is OpKind.CAS]
    # In the order the clients knew they hold the lock: a client that learned it from the
    # committed log moved on then, whenever its node's answer came.
    acquired = sorted(
        (op for op in lock_ops if op.value is not None and op.ok and op.ret is not None),
        key=lambda op: op.told or 0,
    )
    release_asked: dict[str, int] = {}
    for op in lock_ops:
        if op.value is None and op.expected is not None:
            release_asked.setdefault(op.expected, op.invoke)
    previous: ClientOp | None = None
    for op in acquired:
        tenure = by_token.get(op.index or 0)
        if tenure is None or tenure.holder != op.value:
            raise LockViolation(
                f"{op.name} was told it holds the lock with token {op.index}, "
                "but no such tenure committed"
            )
        if previous is not None:
            told = op.told
            assert previous.value is not None and told is not None
            if (previous.index or 0) >= (op.index or 0):
                raise LockViolation(f"token {op.index} of {op.name} after {previous.index}")
            asked = release_asked.get(previous.value)
            if asked is None or asked > told:
                raise LockViolation(
                    f"{op.name} ({op.value}) was told it holds the lock at {told}, before "
                    f"{previous.value} asked to release it ({asked}): the tenures overlap"
                )
        previous = op
