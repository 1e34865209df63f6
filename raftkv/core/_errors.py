"""Errors the core raises for local inputs. Remote input never raises (see ``RawNode.step``).

The full tree, runtime errors included, is drawn in ``raftkv._errors``.
"""

from __future__ import annotations

__all__ = [
    "ConfChangeRefused",
    "InvalidConfig",
    "NotLeader",
    "ProposalDropped",
    "RaftError",
    "ReadyContractError",
]


class RaftError(Exception):
    """Base of every error raftkv raises on purpose."""


class ProposalDropped(RaftError):
    """A proposal or request was not accepted; it will never be applied. Safe to retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotLeader(ProposalDropped):
    """This node is not the leader; ``leader_hint`` is the leader it knows of, if any."""

    def __init__(self, leader_hint: int | None, what: str = "request") -> None:
        hint = f"leader is {leader_hint}" if leader_hint is not None else "no leader known"
        super().__init__(f"not the leader, cannot serve {what} ({hint})")
        self.leader_hint = leader_hint


class ConfChangeRefused(ProposalDropped):
    """A membership change was refused before it entered the log (another is pending, ...)."""


class InvalidConfig(RaftError, ValueError):
    """A ``Config`` (or a bootstrap configuration) that cannot work."""


class ReadyContractError(RaftError, RuntimeError):
    """The runtime broke the Ready contract: persist -> send -> apply -> ``advance(ready)``."""
