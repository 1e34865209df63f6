"""``LeaseTable``: the leases in the replicated state, and the keys attached to each.

A lease is ``(ttl, remaining)``: its granted time to live in seconds, and the remaining TTL the
leader last checkpointed through the log (0: none since it was granted or renewed). When a lease
expires is not replicated state: only the leader's clock decides that (``Lessor``), and it
revokes an expired lease through the log, which deletes every attached key at one revision.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["LeaseInfo", "LeaseTable"]


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    id: int
    ttl: int  # granted, in seconds
    remaining: int  # checkpointed remaining TTL in seconds; 0: not checkpointed
    keys: tuple[bytes, ...]  # attached, in key order


class LeaseTable:
    def __init__(self) -> None:
        # Invariant: _keys has exactly the ids of _leases; a key is in the set of the lease its
        # live version names, and in no other.
        self._leases: dict[int, tuple[int, int]] = {}
        self._keys: dict[int, set[bytes]] = {}

    def __contains__(self, lease: int) -> bool:
        return lease in self._leases

    def __len__(self) -> int:
        return len(self._leases)

    def grant(self, lease: int, ttl: int) -> bool:
        if lease in self._leases:
            return False
        self._leases[lease] = (ttl, 0)
        self._keys[lease] = set()
        return True

    def revoke(self, lease: int) -> list[bytes] | None:
        """Forget ``lease``; its keys, in key order (None if there was no such lease)."""
        if self._leases.pop(lease, None) is None:
            return None
        return sorted(self._keys.pop(lease))

    def attach(self, key: bytes, old: int, new: int) -> None:
        """``key``'s live version moved from lease ``old`` to lease ``new`` (0: none)."""
        if old == new:
            return
        if old in self._keys:  # a revoked lease's keys are deleted after it is gone
            self._keys[old].discard(key)
        if new:
            self._keys[new].add(key)

    def checkpoint(self, lease: int, remaining: int) -> None:
        entry = self._leases.get(lease)
        if entry is not None:
            self._leases[lease] = (entry[0], remaining)

    def info(self, lease: int) -> LeaseInfo | None:
        entry = self._leases.get(lease)
        if entry is None:
            return None
        return LeaseInfo(lease, entry[0], entry[1], tuple(sorted(self._keys[lease])))

    def ids(self) -> list[int]:
        return sorted(self._leases)

    def records(self) -> list[tuple[int, int, int]]:
        """(id, ttl, remaining) of every lease, by id (for a snapshot)."""
        return [(lease, ttl, remaining) for lease, (ttl, remaining) in sorted(self._leases.items())]

    @classmethod
    def restore(
        cls, records: Iterable[tuple[int, int, int]], attached: Iterator[tuple[bytes, int]]
    ) -> LeaseTable:
        """A table from a snapshot's lease records and the (key, lease) of every live key."""
        table = cls()
        for lease, ttl, remaining in records:
            table._leases[lease] = (ttl, remaining)
            table._keys[lease] = set()
        for key, lease in attached:
            if lease:
                table._keys[lease].add(key)
        return table
