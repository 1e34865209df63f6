"""``Lessor``: leases in time — when they expire is the leader's clock, and nothing else.

The leases themselves (granted TTL, checkpointed remaining TTL, attached keys) are replicated
state in the store. Their deadlines are not: only the leader keeps them, from its own monotonic
clock, and only the leader acts on them, by proposing the revocation of an expired lease through
the log. No replica deletes anything by its own clock.

- A leader that takes over gives every lease its checkpointed remaining TTL, or its full TTL if
  none was checkpointed (etcd's rule): a failover never expires a lease early.
- Every ``checkpoint_interval`` the leader records the leases' remaining TTLs through the log, so
  that a whole-cluster restart does not give long leases their full TTL again forever; a
  keep-alive of a checkpointed lease clears its checkpoint first (else a failover right after
  it would use the stale remaining TTL).
- A keep-alive is served by the leader only, after a ReadIndex round has confirmed that it still
  leads (a deposed leader must not renew what the new leader may expire).
- TTLs are whole seconds, at least ``min_ttl`` (above the election timeout: a lease must outlive
  the election that a failover takes).
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .._errors import (
    LeaseIdTaken,
    NodeClosed,
    NotLeader,
    OutcomeUnknown,
    ProposalDropped,
    UnknownLease,
)
from ..core import Role
from ._commands import LeaseCheckpointCommand, LeaseGrantCommand, LeaseRevokeCommand, encode_command
from ._limits import MAX_INT
from ._results import LeaseExists, LeaseGranted, LeaseNotFound, LeaseRevoked, LeasesCheckpointed

if TYPE_CHECKING:
    from ._service import KVService

__all__ = ["LeaseLimits", "LeaseStatistics", "LeaseStatus", "Lessor"]

log = logging.getLogger("raftkv.kv")


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """A lease as the leader sees it now."""

    id: int
    ttl: int  # remaining, whole seconds (rounded up); -1: expired, its revocation under way
    granted_ttl: int
    keys: tuple[bytes, ...]


@dataclass(slots=True)
class LeaseStatistics:
    granted: int = 0
    revoked: int = 0  # by a caller (expired ones are counted apart)
    keepalives: int = 0
    expired: int = 0  # revoked by this node, as leader, because they expired


@dataclass(frozen=True, slots=True)
class LeaseLimits:
    min_ttl: int = 2  # seconds
    max_ttl: int = 9_000_000_000  # seconds (as etcd's)
    checkpoint_interval: float = 300.0  # seconds between checkpoints of remaining TTLs
    check_interval: float = 0.1  # seconds between the leader's looks at its deadlines

    @classmethod
    def for_election_timeout(cls, seconds: float) -> LeaseLimits:
        """Limits whose minimum TTL is above one and a half election timeouts (as etcd's)."""
        return cls(min_ttl=max(1, math.ceil(1.5 * seconds)))


class Lessor:
    def __init__(self, service: KVService, limits: LeaseLimits) -> None:
        self.service = service
        self.limits = limits
        self._deadlines: dict[int, float] = {}  # on the leader only: lease -> expiry time
        self._revoking: set[int] = set()
        self._next_checkpoint = math.inf
        self._rng = random.SystemRandom()
        self.stats = LeaseStatistics()

    # -- requests --------------------------------------------------------------------------------

    def check_ttl(self, ttl: int) -> None:
        if type(ttl) is not int or not self.limits.min_ttl <= ttl <= self.limits.max_ttl:
            raise ValueError(
                f"a lease TTL is a whole number of seconds from {self.limits.min_ttl} "
                f"(above the election timeout) to {self.limits.max_ttl}, not {ttl!r}"
            )

    async def grant(self, ttl: int, lease: int | None = None) -> LeaseGranted:
        """A new lease of ``ttl`` seconds (``lease`` picks its id; None: a random one);
        ``LeaseIdTaken`` if that id is in use, ``ValueError`` for a TTL out of bounds."""
        self.check_ttl(ttl)
        if lease is None:
            lease = self._rng.randrange(1, MAX_INT + 1)
        elif type(lease) is not int or not 1 <= lease <= MAX_INT:
            raise ValueError(f"a lease id is an integer from 1 to {MAX_INT}, not {lease!r}")
        result = await self.service.node.propose(encode_command(LeaseGrantCommand(lease, ttl)))
        if isinstance(result, LeaseExists):
            raise LeaseIdTaken(lease)
        assert isinstance(result, LeaseGranted), result
        self.stats.granted += 1
        return result

    async def revoke(self, lease: int) -> LeaseRevoked:
        """Revoke ``lease``: every key attached to it is deleted, at one revision."""
        result = await self.service.node.propose(encode_command(LeaseRevokeCommand(lease)))
        if isinstance(result, LeaseNotFound):
            raise UnknownLease(lease)
        assert isinstance(result, LeaseRevoked), result
        self.stats.revoked += 1
        return result

    async def keepalive(self, lease: int) -> int:
        """Renew ``lease`` for its full TTL (leader only: ``NotLeader`` elsewhere); its TTL.

        A lease that has expired by our clock is gone, even while its revocation is on its way:
        renewing it would promise a TTL that the revocation is about to end."""
        node = self.service.node
        self.check_leader()
        await node.read_barrier()  # we still lead: our deadline is the one that counts
        self.check_leader()
        info = self.service.store.lease(lease)
        if info is None or self._has_expired(lease, trio.current_time()):
            raise UnknownLease(lease)
        if info.remaining:
            await self._checkpoint(((lease, 0),))  # a stale remaining TTL must not outlive this
        self._deadlines[lease] = trio.current_time() + info.ttl
        self.stats.keepalives += 1
        return info.ttl

    def _has_expired(self, lease: int, now: float) -> bool:
        deadline = self._deadlines.get(lease)
        return lease in self._revoking or (deadline is not None and deadline <= now)

    def status(self, lease: int) -> LeaseStatus:
        """The lease's remaining TTL as the leader sees it (leader only: ``NotLeader``)."""
        self.check_leader()
        info = self.service.store.lease(lease)
        if info is None:
            raise UnknownLease(lease)
        deadline = self._deadline(lease, info.ttl, info.remaining, trio.current_time())
        left = deadline - trio.current_time()
        ttl = math.ceil(left) if left > 0 else -1
        return LeaseStatus(lease, ttl, info.ttl, info.keys)

    def check_leader(self) -> None:
        """``NotLeader`` unless this node leads (only the leader's clock counts)."""
        status = self.service.node.status()
        if status.role is not Role.LEADER:
            raise NotLeader(status.leader, "leases")

    # -- the leader's clock ----------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch the deadlines while this node leads; revoke what expires, checkpoint the rest."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(self.limits.check_interval)
                if self.service.node.status().role is not Role.LEADER:
                    self._deadlines.clear()  # a future term starts them afresh
                    self._next_checkpoint = math.inf
                    continue
                now = trio.current_time()
                for lease in self._expired(now):
                    self._revoking.add(lease)
                    nursery.start_soon(self._revoke_expired, lease)
                if now >= self._next_checkpoint:
                    self._next_checkpoint = now + self.limits.checkpoint_interval
                    nursery.start_soon(self._checkpoint_all, now)
                elif self._next_checkpoint == math.inf:
                    self._next_checkpoint = now + self.limits.checkpoint_interval

    def _deadline(self, lease: int, ttl: int, remaining: int, now: float) -> float:
        """The lease's deadline, starting it (remaining or full TTL) if we have none yet."""
        deadline = self._deadlines.get(lease)
        if deadline is None:
            deadline = self._deadlines[lease] = now + (remaining or ttl)
        return deadline

    def _expired(self, now: float) -> list[int]:
        store = self.service.store
        live = set(store.lease_ids())
        for lease in [lease for lease in self._deadlines if lease not in live]:
            del self._deadlines[lease]  # revoked meanwhile
        expired = []
        for lease in sorted(live - self._revoking):
            info = store.lease(lease)
            assert info is not None
            if self._deadline(lease, info.ttl, info.remaining, now) <= now:
                expired.append(lease)
        return expired

    async def _revoke_expired(self, lease: int) -> None:
        try:
            await self.service.node.propose(encode_command(LeaseRevokeCommand(lease)))
            self.stats.expired += 1
            log.info("lease %d expired and was revoked", lease)
        except (ProposalDropped, OutcomeUnknown, NodeClosed) as exc:
            log.debug("revoking expired lease %d did not go through (%s); retrying", lease, exc)
        finally:
            self._revoking.discard(lease)

    async def _checkpoint_all(self, now: float) -> None:
        remaining = tuple(
            (lease, max(1, math.ceil(deadline - now)))
            for lease, deadline in sorted(self._deadlines.items())
            if deadline > now
        )
        if remaining:
            try:
                await self._checkpoint(remaining)
            except (ProposalDropped, OutcomeUnknown, NodeClosed) as exc:
                log.debug("lease checkpoint did not go through: %s", exc)

    async def _checkpoint(self, remaining: tuple[tuple[int, int], ...]) -> None:
        result = await self.service.node.propose(encode_command(LeaseCheckpointCommand(remaining)))
        assert isinstance(result, LeasesCheckpointed), result
