"""``KVStateMachine``: the tiny deterministic state machine the simulator replicates.

A normal entry whose data reads ``key=value`` sets register ``key``; any other entry (the
leader's empty no-op, configuration changes, free-form data) changes no register. Writes are
identified by their bytes (the simulator's values are unique operation ids): applying the same
``key=value`` command a second time changes nothing, as a real service dedupes retried requests
by request id. This matters because a forwarded proposal can be duplicated by the network and
then appear twice in the log. Every applied
entry feeds a running CRC of (index, data), so two replicas that applied the same prefix of the
log have the same ``digest``: a cheap check of state-machine safety across snapshots.
"""

from __future__ import annotations

import json
import zlib

from raftkv.core import Entry, EntryType

__all__ = ["KVStateMachine", "parse_put"]


def parse_put(data: bytes) -> tuple[str, str] | None:
    """(key, value) if ``data`` is a ``key=value`` command, else None."""
    key, eq, value = data.partition(b"=")
    if not eq or not key:
        return None
    return key.decode("utf-8", "replace"), value.decode("utf-8", "replace")


class KVStateMachine:
    __slots__ = ("applied", "digest", "kv", "seen")

    def __init__(self) -> None:
        self.kv: dict[str, str] = {}
        self.seen: set[bytes] = set()
        self.applied = 0
        self.digest = 0

    def apply(self, entry: Entry) -> tuple[str, str] | None:
        """Apply one committed entry; returns the (key, value) it wrote, if any."""
        index = entry.index
        if index != self.applied + 1:
            raise AssertionError(f"applying entry {index} after {self.applied}: gap or repeat")
        self.applied = index
        data = entry.data
        self.digest = zlib.crc32(data, zlib.crc32(index.to_bytes(8, "big"), self.digest))
        if entry.type is EntryType.NORMAL and data:
            put = parse_put(data)
            if put is not None and data not in self.seen:
                self.seen.add(data)
                self.kv[put[0]] = put[1]
                return put
        return None

    def get(self, key: str) -> str | None:
        return self.kv.get(key)

    def snapshot(self) -> bytes:
        seen = sorted(d.decode("utf-8", "replace") for d in self.seen)
        doc = {"applied": self.applied, "digest": self.digest, "kv": self.kv, "seen": seen}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def restore(cls, data: bytes) -> KVStateMachine:
        sm = cls()
        if data:
            doc = json.loads(data)
            sm.applied = int(doc["applied"])
            sm.digest = int(doc["digest"])
            sm.kv = {str(k): str(v) for k, v in doc["kv"].items()}
            sm.seen = {str(d).encode() for d in doc["seen"]}
        return sm

    def describe(self) -> str:
        pairs = " ".join(f"{k}={v}" for k, v in sorted(self.kv.items()))
        return f"applied={self.applied} {pairs}".rstrip()
