"""The runtime's settings and what it reports: ``NodeConfig``, ``NodeStatus``, statistics."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._gc import GcStatistics
from ._stats import LatencyHistogram
from .core import Config, Role, Status

__all__ = ["MemberStatus", "NodeConfig", "NodeStatistics", "NodeStatus"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """The runtime's settings; ``raft_config()`` derives the core's ``Config``."""

    id: int
    tick_interval: float = 0.1  # seconds per tick
    election_ticks: int = 10
    heartbeat_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    # A snapshot is taken once the log since the last one weighs snapshot_log_ratio times that
    # snapshot's size, but not before snapshot_count entries; and once it weighs
    # snapshot_max_log_bytes whatever the count (an entry weighs its data + 64 bytes).
    snapshot_count: int = 10_000
    snapshot_log_ratio: float = 0.5
    snapshot_max_log_bytes: int = 16 << 20
    catch_up_entries: int = 5_000  # entries kept behind a snapshot for slow followers
    promote_lag: int = 100  # a learner within this many entries of the leader is promoted
    # Off: learners stay learners until promote_member() (etcd's `member promote`) is asked.
    auto_promote: bool = True
    # Bytes of entries in one append (one entry at least, however large). Encoding and decoding
    # one is a step of the raft loop and of the peer reader: 1 MiB of small writes' entries is
    # 5 000 of them, 8 ms to encode on a quiet machine and more to decode; 256 KiB: 2 ms.
    max_size_per_msg: int = 256 << 10
    max_inflight_msgs: int = 256
    max_uncommitted_entries_size: int = 64 << 20
    # Bytes of committed entries applied per Ready: a restart's log tail or a follower
    # catching up is applied a slice at a time, between which the loop takes its input. About
    # one transaction of 128 puts (2-3 ms to apply): the loop's 5 ms of Readies per iteration
    # overshoots by one Ready at most (64 KiB: four of them, 10 ms and more under load).
    max_committed_size_per_ready: int = 16 << 10
    # Off: a new commit index reaches followers with the next append or heartbeat (at once only
    # when they wait for it: forwarded writes, membership changes). Halves the messages of a
    # lone write; serializable reads on a follower may lag by up to one heartbeat.
    broadcast_commit: bool = False
    request_timeout: float = 5.0  # default wait for proposals, reads and membership changes
    inbox_size: int = 10_000
    # Freeze what lives for the whole run out of the garbage collector's walks, and raise its
    # thresholds (``_gc``; process-wide); False leaves the collector as the process set it.
    gc_tuning: bool = True
    seed: int | None = None  # election-timeout randomness; None draws one from the OS
    # Where this node serves clients; published to the cluster so members can point at each other.
    client_url: str = ""

    def __post_init__(self) -> None:
        if self.tick_interval <= 0:
            raise ValueError("tick_interval must be positive")
        if self.snapshot_count < 1:
            raise ValueError("snapshot_count must be >= 1")
        if self.snapshot_log_ratio < 0 or self.snapshot_max_log_bytes < 1:
            raise ValueError("snapshot_log_ratio must be >= 0 and snapshot_max_log_bytes >= 1")
        if self.catch_up_entries < 0:
            raise ValueError("catch_up_entries must be >= 0")
        if self.request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        self.raft_config()  # validates the rest

    def raft_config(self) -> Config:
        return Config(
            id=self.id,
            election_ticks=self.election_ticks,
            heartbeat_ticks=self.heartbeat_ticks,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
            max_size_per_msg=self.max_size_per_msg,
            max_inflight_msgs=self.max_inflight_msgs,
            max_uncommitted_entries_size=self.max_uncommitted_entries_size,
            max_committed_size_per_ready=self.max_committed_size_per_ready,
            broadcast_commit=self.broadcast_commit,
        )


@dataclass(frozen=True, slots=True)
class MemberStatus:
    id: int
    peer_url: str
    voter: bool
    client_url: str = ""
    # Leader only: how far the member's log matches the leader's (None elsewhere).
    match: int | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class NodeStatus:
    id: int
    role: Role
    term: int
    leader: int | None
    commit: int
    applied: int
    last_index: int
    members: tuple[MemberStatus, ...]
    removed: bool

    @classmethod
    def of(cls, s: Status, members: tuple[MemberStatus, ...], *, removed: bool) -> NodeStatus:
        """The runtime's status from the core's, with the member table beside it."""
        return cls(
            id=s.id,
            role=s.role,
            term=s.term,
            leader=s.leader,
            commit=s.commit,
            applied=s.applied,
            last_index=s.last_index,
            members=members,
            removed=removed,
        )


@dataclass(slots=True)
class NodeStatistics:
    proposals: int = 0
    proposals_dropped: int = 0
    applied_entries: int = 0
    reads: int = 0
    leader_changes: int = 0
    elections_won: int = 0
    snapshots_taken: int = 0
    snapshots_restored: int = 0
    ready_batches: int = 0
    # Per Ready: time in storage.save (the fsync), time applying committed entries.
    persist_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    apply_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    # Per raft-loop iteration, from taking its input to waiting for more (waiting is not a
    # stall): what a request arriving meanwhile may wait before the loop takes it.
    loop_busy: LatencyHistogram = field(default_factory=LatencyHistogram)
    loop_stall_max: float = 0.0  # seconds: the longest iteration since start
    # The newest snapshot: seconds to build (serialize and write) it, its size; seconds to read
    # a received one beside the loop, and to restore one (a swap once prepared).
    snapshot_build_seconds: float = 0.0
    snapshot_bytes: int = 0
    snapshot_prepare_seconds: float = 0.0
    snapshot_restore_seconds: float = 0.0
    # The process's garbage collections (shared by every node of the process).
    gc: GcStatistics = field(default_factory=GcStatistics)

    def loop_iteration(self, seconds: float) -> None:
        """One raft-loop iteration took ``seconds`` (waiting for input excluded)."""
        self.loop_busy.observe(seconds)
        self.loop_stall_max = max(self.loop_stall_max, seconds)
