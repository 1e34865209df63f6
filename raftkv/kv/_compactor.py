"""``AutoCompaction``: keep the revision history bounded, by revisions kept or by age.

Every member runs it; only the leader acts, and only through the log (``KVService.compact``), so
every replica forgets the same history at the same revision. By revisions: once the history
holds more than ``keep_revisions`` plus a tenth, compact to ``revision - keep_revisions``. By age:
the leader notes the revision every ``interval`` and compacts to the newest one noted at least
``keep_seconds`` ago (a new leader starts noting afresh, so a failover keeps history longer,
never shorter).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import trio

from .._errors import Compacted, FutureRevision, NodeClosed, OutcomeUnknown, ProposalDropped
from ..core import Role
from ._service import KVService

__all__ = ["AutoCompaction", "Retention", "parse_retention"]

log = logging.getLogger("raftkv.kv")

DEFAULT_KEEP_REVISIONS = 10_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Retention:
    """What history to keep: ``revisions`` newest revisions, or ``seconds`` of them (one of
    the two; neither: keep everything)."""

    revisions: int | None = DEFAULT_KEEP_REVISIONS
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.revisions is not None and self.seconds is not None:
            raise ValueError("keep history by revisions or by age, not both")
        if (self.revisions is not None and self.revisions < 1) or (
            self.seconds is not None and self.seconds <= 0
        ):
            raise ValueError("a retention must be positive")


def parse_retention(text: str) -> Retention:
    """``"10000"`` (revisions), ``"90s"``, ``"30m"``, ``"1h"``, ``"7d"`` (age), ``"0"`` (keep
    everything); ``ValueError`` naming the problem otherwise."""
    text = text.strip().lower()
    if text.isdigit():
        return Retention(int(text) or None)
    number, unit = text[:-1], text[-1:]
    try:
        seconds = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        raise ValueError(
            f"{text!r} is neither a number of revisions nor an age like 90s, 30m, 1h or 7d"
        ) from None
    if not seconds > 0:
        raise ValueError(f"{text!r}: an age must be positive")
    return Retention(None, seconds)


class AutoCompaction:
    def __init__(self, service: KVService, retention: Retention, *, interval: float = 1.0) -> None:
        self.service = service
        self.retention = retention
        self.interval = interval
        self._noted: deque[tuple[float, int]] = deque()  # (time, revision), as leader

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self.retention.revisions is None and self.retention.seconds is None:
            return
        while True:
            await trio.sleep(self.interval)
            if self.service.node.status().role is not Role.LEADER:
                self._noted.clear()
                continue
            target = self._target(trio.current_time())
            if target is not None:
                await self._compact(target)

    def _target(self, now: float) -> int | None:
        """The revision to compact to now, if it is time to."""
        store = self.service.store
        keep = self.retention.revisions
        if keep is not None:
            if store.revision - store.compact_revision <= keep + max(1, keep // 10):
                return None
            return store.revision - keep
        assert self.retention.seconds is not None
        self._noted.append((now, store.revision))
        target = None
        while self._noted and self._noted[0][0] <= now - self.retention.seconds:
            target = self._noted.popleft()[1]
        return target if target is not None and target > store.compact_revision else None

    async def _compact(self, revision: int) -> None:
        try:
            await self.service.compact(revision)
        except (Compacted, FutureRevision):
            return  # another leader compacted meanwhile
        except (ProposalDropped, OutcomeUnknown, NodeClosed) as exc:
            log.debug("automatic compaction to %d did not go through: %s", revision, exc)
            return
        log.info("compacted the history to revision %d", revision)
