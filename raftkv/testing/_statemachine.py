"""``KVStateMachine``: the tiny deterministic state machine the simulator replicates.

Registers, and the commands that change them (any other entry, the leader's empty no-op,
configuration changes, free-form data, changes nothing)::

    key=value             set register ``key`` (an empty value empties it)
    key=value?expected    compare-and-set: set it only if it holds ``expected`` now (an empty
                          ``expected``: only if it is empty); the result says whether it did
    txn a==x b== then a=v b=v else c=v get a c
                          a transaction: if every compare holds (``b==``: ``b`` is empty), the
                          writes after ``then``, else those after ``else`` (either list may be
                          empty, a key at most once in each), all at one index; ``get`` reads
                          registers as the transaction found them, before its writes
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

__all__ = ["Applied", "Command", "KVStateMachine", "Pairs", "Txn", "parse_command"]

Pairs = tuple[tuple[str, str | None], ...]
"""(key, value) pairs; a value None is an empty register."""


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


@dataclass(frozen=True, slots=True)
class Txn:
    """A transaction: ``success`` is written if every compare (register holds value) holds,
    ``failure`` otherwise; ``reads`` are the registers it reads, before its writes."""

    compares: Pairs
    success: Pairs
    failure: Pairs
    reads: tuple[str, ...] = ()

    @property
    def keys(self) -> frozenset[str]:
        pairs = self.compares + self.success + self.failure
        return frozenset(k for k, _ in pairs) | frozenset(self.reads)

    def describe(self) -> str:
        def pairs(sep: str, items: Pairs) -> str:
            return "".join(f" {k}{sep}{v or ''}" for k, v in items)

        text = f"txn{pairs('==', self.compares)} then{pairs('=', self.success)}"
        text += f" else{pairs('=', self.failure)}"
        return text + (" get " + " ".join(self.reads) if self.reads else "")


def _parse_txn(body: str) -> Txn | None:
    """The transaction ``txn ... then ... else ... [get ...]``, or None if malformed."""
    words = body.split()
    sections: dict[str, list[str]] = {"txn": [], "then": [], "else": [], "get": []}
    order = iter(sections)
    current = next(order)
    if not words or words[0] != current:
        return None
    for word in words[1:]:
        if word in sections:
            # Sections come in order, each at most once.
            for name in order:
                if name == word:
                    current = word
                    break
            else:
                return None
            continue
        sections[current].append(word)
    compares = _pairs(sections["txn"], "==")
    success = _pairs(sections["then"], "=")
    failure = _pairs(sections["else"], "=")
    if compares is None or success is None or failure is None or "then" not in words:
        return None
    return Txn(compares, success, failure, tuple(sections["get"]))


def _pairs(words: list[str], sep: str) -> Pairs | None:
    out = []
    for word in words:
        key, found, value = word.partition(sep)
        if not found or not key or "=" in key or "=" in value:
            return None
        out.append((key, value or None))
    if len({k for k, _ in out}) != len(out):
        return None  # a key twice in one list (etcd refuses a duplicate key in a txn too)
    return tuple(out)


def parse_command(data: bytes) -> Command | Txn | None:
    """The register command or transaction in ``data``, or None if it is neither."""
    body = data.partition(b"#")[0]
    if body.startswith(b"txn "):
        return _parse_txn(body.decode("utf-8", "replace"))
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
    """What applying one command did: ``ok`` is False for a compare-and-set that failed (then
    nothing changed), or for a transaction whose compares did not hold; ``writes`` are the
    registers it set (sorted by key), ``reads`` what a transaction read."""

    index: int
    command: Command | Txn
    ok: bool
    writes: Pairs = ()
    reads: Pairs = ()


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
        if isinstance(command, Txn):
            return self._apply_txn(index, command)
        key = command.key
        ok = not command.cas or self.kv.get(key) == command.expected
        writes: Pairs = ((key, command.value),) if ok else ()
        self._write(index, writes)
        return Applied(index, command, ok, writes)

    def _apply_txn(self, index: int, txn: Txn) -> Applied:
        kv = self.kv
        reads = tuple((k, kv.get(k)) for k in txn.reads)
        ok = all(kv.get(k) == v for k, v in txn.compares)
        writes = tuple(sorted(txn.success if ok else txn.failure))
        self._write(index, writes)
        return Applied(index, txn, ok, writes, reads)

    def _write(self, index: int, writes: Pairs) -> None:
        for key, value in writes:
            if value is None:
                self.kv.pop(key, None)
            else:
                self.kv[key] = value
            self.history.append((index, key, value))

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
