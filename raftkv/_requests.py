"""``Requests``: how a caller's request waits for the raft loop — one deadline for the whole
request, a retry while a leader is being elected (a refusal for want of a leader is certain:
nothing entered the log), and the difference between a certain refusal (``ProposalDropped``)
and an unknown outcome (``OutcomeUnknown``: the request was handed to Raft, then we stopped
waiting or the node stopped)."""

from __future__ import annotations

from collections.abc import Callable

import trio

from ._errors import NotLeader, OutcomeUnknown, ProposalDropped
from ._inbox import ConfChangeRequest, Inbox, ProposeRequest, ReadRequest, TransferRequest
from ._node_config import NodeStatus
from ._status import StatusBoard
from ._waiters import Waiter, Waiters
from .core import ConfChange, Role

__all__ = ["Requests"]


class Requests:
    def __init__(
        self,
        inbox: Inbox,
        waiters: Waiters,
        status: StatusBoard,
        *,
        check_open: Callable[[], None],
        takes_conf_changes: Callable[[NodeStatus], bool],
    ) -> None:
        self._inbox = inbox
        self._waiters = waiters
        self._status = status
        self._check_open = check_open
        self._takes_conf_changes = takes_conf_changes

    async def propose(self, command: bytes, deadline: float) -> object:
        while True:
            self._check_open()
            seq, waiter = self._waiters.new_proposal()
            try:
                await self._inbox.enqueue(ProposeRequest(seq, command, waiter), deadline)
                with trio.move_on_at(deadline):
                    return await waiter.outcome()
                raise OutcomeUnknown(
                    "the write was proposed but not applied in time; it may still apply"
                )
            except NotLeader as exc:
                await self._wait_leader_until(deadline, exc)  # it never entered the log: retry
            finally:
                self._waiters.forget_proposal(seq)

    async def read_barrier(self, deadline: float) -> int:
        while True:
            self._check_open()
            waiter = Waiter()
            try:
                with trio.fail_at(deadline):
                    await self._inbox.submit(ReadRequest(waiter))
                    index: int = await waiter.wait()
                    return index
            except trio.TooSlowError:
                raise ProposalDropped(
                    "no quorum confirmed the read in time; it is safe to retry"
                ) from None
            except NotLeader as exc:
                await self._wait_leader_until(deadline, exc)

    async def _wait_leader_until(self, deadline: float, refusal: NotLeader) -> None:
        """Wait for a leader to be known by ``deadline``, else raise ``refusal``."""
        if refusal.leader_hint is not None:
            raise refusal  # proposals are not forwarded: the caller must go to the leader
        with trio.move_on_at(deadline):
            await self._status.wait(lambda s: s.leader is not None)
            return
        raise refusal

    async def conf_change(self, change: ConfChange, deadline: float) -> dict[int, str]:
        self._check_open()
        with trio.move_on_at(deadline):  # a new leader takes them once its no-op is applied
            await self._status.wait(self._takes_conf_changes)
        waiter = Waiter()
        try:
            with trio.fail_at(deadline):
                await self._inbox.submit(ConfChangeRequest(change, waiter))
                members: dict[int, str] = await waiter.outcome()
                return members
        except trio.TooSlowError:
            raise OutcomeUnknown(
                "the membership change was proposed but not applied in time"
            ) from None

    async def transfer_leadership(self, to: int, deadline: float) -> None:
        self._check_open()
        waiter = Waiter()
        try:
            with trio.fail_at(deadline):
                await self._inbox.submit(TransferRequest(to, waiter))
                await waiter.wait()
        except trio.TooSlowError:
            raise ProposalDropped(f"leadership did not move to {to} in time") from None


def leader_ready(ready_at: Callable[[], int]) -> Callable[[NodeStatus], bool]:
    """Whether a node takes membership changes: not the leader (it refuses them at once), or a
    leader that has applied its term's first entry (at index ``ready_at()``)."""
    return lambda s: s.role is not Role.LEADER or s.applied >= ready_at()
