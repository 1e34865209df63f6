"""``Config``: the tunables of one Raft node, validated at construction."""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

from ._errors import InvalidConfig

__all__ = ["Config", "ReadOnlyOption"]


class ReadOnlyOption(enum.Enum):
    """How the leader confirms a read index (Raft thesis §6.4).

    SAFE: a heartbeat round acknowledged by a quorum, for every batch of reads. Needs no clock.
    LEASE_BASED: skip the round while the leader's lease holds. Only with ``check_quorum``: the
    lease is "a quorum answered me within the last election timeout", which is safe only if no
    node's clock runs faster than another's by more than the gap between ``election_ticks`` and
    the randomized timeout a follower waits before it may vote again. Bounded clock drift assumed.
    """

    SAFE = "safe"
    LEASE_BASED = "lease-based"


@dataclass(frozen=True, slots=True)
class Config:
    id: int
    # A follower that hears nothing for a randomized timeout in [election_ticks, 2*election_ticks)
    # campaigns. A leader sends heartbeats every heartbeat_ticks.
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    # Bytes of entry payload per AppendEntries (at least one entry is always sent).
    max_size_per_msg: int = 1 << 20
    # AppendEntries a leader keeps in flight to one follower in the Replicate state.
    max_inflight_msgs: int = 256
    # Bytes of proposed-but-uncommitted payload the leader accepts before dropping proposals;
    # 0 means no limit.
    max_uncommitted_entries_size: int = 64 << 20
    # Bytes of committed entries handed out per Ready; 0 means no limit.
    max_committed_size_per_ready: int = 0
    read_only: ReadOnlyOption = ReadOnlyOption.SAFE
    # A follower forwards proposals to its leader (so clients may write to any member); when
    # false it refuses them with NotLeader.
    forward_proposals: bool = True
    # A leader announces a new commit index at once, in empty appends, so followers apply
    # promptly. When false the index travels with the next append or heartbeat instead (half
    # the messages per write when writes come one at a time), except when followers wait for
    # what committed: proposals they forwarded, membership changes, a new leader's first entry,
    # the index a follower's ReadIndex answer names.
    broadcast_commit: bool = True

    def __post_init__(self) -> None:
        # Every mistake in a configuration is an InvalidConfig, a wrongly typed field too.
        for f in fields(self):
            value = getattr(self, f.name)
            want = _FIELD_TYPES[str(f.type)]
            if type(value) is not want:
                raise InvalidConfig(f"{f.name} must be {want.__name__}, got {value!r}")
        if self.id < 1:
            raise InvalidConfig(f"id must be an integer >= 1, got {self.id!r}")
        if self.heartbeat_ticks < 1:
            raise InvalidConfig("heartbeat_ticks must be >= 1")
        if self.election_ticks <= self.heartbeat_ticks:
            raise InvalidConfig("election_ticks must be greater than heartbeat_ticks")
        if self.max_size_per_msg < 0:
            raise InvalidConfig("max_size_per_msg must be >= 0")
        if self.max_inflight_msgs < 1:
            raise InvalidConfig("max_inflight_msgs must be >= 1")
        if self.max_uncommitted_entries_size < 0:
            raise InvalidConfig("max_uncommitted_entries_size must be >= 0")
        if self.max_committed_size_per_ready < 0:
            raise InvalidConfig("max_committed_size_per_ready must be >= 0")
        if self.read_only is ReadOnlyOption.LEASE_BASED and not self.check_quorum:
            raise InvalidConfig("lease-based reads are only safe with check_quorum")


_FIELD_TYPES: dict[str, type] = {"int": int, "bool": bool, "ReadOnlyOption": ReadOnlyOption}
