"""``KVStateMachine``: the tiny deterministic state machine the simulator replicates.

Registers, and the commands that change them (any other entry, the leader's empty no-op,
configuration changes, free-form data, changes nothing)::

    key=value             set register ``key`` (an empty value empties it)
    key=value?expected    compare-and-set: set it only if it holds ``expected`` now (an empty
                          ``expected``: only if it is empty); the result says whether it did
    ...#tag               a suffix the registers ignore: it makes a retried command unique

Commands are identified by their bytes (the simulator's values are unique operation ids):
applying the same command a second time changes nothing, as a real service dedupes retried
requests by request id. This matters because a forwarded proposal can be duplicated by the
network and then appear twice in the log.

Every applied entry feeds a running CRC of (index, data), so two replicas that applied the same
prefix of the log have the same ``digest``: a cheap check of state-machine safety across
snapshots. ``history`` is every write that changed a register, by index, as a watch delivers
them; it travels in snapshots, so a node restored from one can still serve watches that start
before it (the service's revision history).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from raftkv.core import Entry, EntryType

__all__ = ["Applied", "Command", "KVStateMachine", "parse_command"]


@dataclass(frozen=True, slots=True)
class Command:
    """A register command. ``value`` None empties the register; for a compare-and-set
    (``cas``) ``expected`` is the value it requires (None: empty)."""

    key: str
    value: str | None
    cas: bool = False
    expected: str | None = None

    def describe(self) -> str:
        text = f"{self.key}={self.value or ''}"
        return text + (f"?{self.expected or ''}" if self.cas else "")


def parse_command(data: bytes) -> Command | None:
    """The register command in ``data``, or None if it is not one."""
    body = data.partition(b"#")[0]
    key, eq, rest = body.partition(b"=")
    if not eq or not key:
        return None
    value, cas, expected = rest.partition(b"?")
    return Command(
        key.decode("utf-8", "replace"),
        value.decode("utf-8", "replace") or None,
        bool(cas),
        expected.decode("utf-8", "replace") or None,
    )


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one command did: ``ok`` is False for a compare-and-set that failed
    (then nothing changed)."""

    index: int
    command: Command
    ok: bool


class KVStateMachine:
    __slots__ = ("applied", "digest", "history", "kv", "seen")

    def __init__(self) -> None:
        self.kv: dict[str, str] = {}
        self.seen: set[bytes] = set()
        self.applied = 0
        self.digest = 0
        # Every write that changed a register: (index, key, value), by index.
        self.history: list[tuple[int, str, str | None]] = []

    def apply(self, entry: Entry) -> Applied | None:
        """Apply one committed entry; what its command did (None: not a command, or one
        applied before)."""
        index = entry.index
        if index != self.applied + 1:
            raise AssertionError(f"applying entry {index} after {self.applied}: gap or repeat")
        self.applied = index
        data = entry.data
        self.digest = zlib.crc32(data, zlib.crc32(index.to_bytes(8, "big"), self.digest))
        if entry.type is not EntryType.NORMAL or not data or data in self.seen:
            return None
        command = parse_command(data)
        if command is None:
            return None
        self.seen.add(data)
        key = command.key
        ok = not command.cas or self.kv.get(key) == command.expected
        if ok:
            if command.value is None:
                self.kv.pop(key, None)
            else:
                self.kv[key] = command.value
            self.history.append((index, key, command.value))
        return Applied(index, command, ok)

    def get(self, key: str) -> str | None:
        return self.kv.get(key)

    def snapshot(self) -> bytes:
        seen = sorted(d.decode("utf-8", "replace") for d in self.seen)
        doc = {
            "applied": self.applied,
            "digest": self.digest,
            "kv": self.kv,
            "seen": seen,
            "history": self.history,
        }
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
            sm.history = [
                (int(i), str(k), None if v is None else str(v)) for i, k, v in doc["history"]
            ]
        return sm

    def describe(self) -> str:
        pairs = " ".join(f"{k}={v}" for k, v in sorted(self.kv.items()))
        return f"applied={self.applied} {pairs}".rstrip()
