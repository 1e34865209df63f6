"""``seed_storage``: the first state of a founding member of a new cluster, from a snapshot of
a state machine — how a cluster is restored from a backup."""

from __future__ import annotations

from collections.abc import Mapping

from ._envelope import MemberTables, encode_snapshot
from ._errors import InvalidConfig
from .core import ConfState, HardState, Snapshot, SnapshotMetadata
from .storage import Storage

__all__ = ["seed_storage"]


async def seed_storage(storage: Storage, *, peers: Mapping[int, str], state: bytes) -> None:
    """Make empty ``storage`` the start of a founding member of a new cluster whose members are
    ``peers`` (id -> peer URL) and whose state machine starts from ``state`` (what its
    ``snapshot()`` returns; it will apply entries from index 2 on). Seed every founding member
    with the same ``peers`` and ``state``, then start each with ``open_node`` (no ``peers``
    needed: the data wins)."""
    if not peers:
        raise InvalidConfig("a new cluster needs at least one member")
    if not (await storage.load()).is_empty:
        raise InvalidConfig("the storage holds data already: seed only an empty one")
    conf = ConfState(voters=tuple(sorted(peers)))
    data = encode_snapshot(MemberTables(dict(peers), {}), [state])
    snapshot = Snapshot(SnapshotMetadata(index=1, term=1, conf_state=conf), data)
    await storage.save(
        hard_state=HardState(term=1, vote=None, commit=1), entries=(), snapshot=snapshot, sync=True
    )
