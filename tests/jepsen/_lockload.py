"""The lock workload: clients take one lock, write a register fenced by their token, release.

Each client is an ``AsyncClient`` over every member (it fails over, keeps its lease alive and
watches its predecessor as users' programs do) that, again and again, takes the lock ``lock/L``
(``kv.lock``: a lease, a key under ``lock/L/``, FIFO by create revision), and while it holds it
writes ``lock/reg`` once or twice with a value tagged with its fencing token, through a
transaction that applies only while the lock is still its own: the compare
``create_revision(<its lock key>) == token`` (etcd's recipe: the key still exists, and is the
one it created; the oldest key under the name is the holder, so it still holds the lock). Then
it releases (the lease is revoked).

Recorded: ``acquire`` (from asking to holding; ``value``/``index`` = the token), ``lwrite``
(invoked right after ``lease.check()`` passed, so at a moment the client knew it held the
lock), ``release``; and after a quarter of the tenures, ``lzombie``: one more fenced write
with the token of the tenure just ended, as a holder that was paused past its lease would send
it (this client's own lease keeps running, so a real pause cannot be had in-process): the guard
must refuse it. A client still waiting at the deadline goes on waiting (bounded), so that a
waiter left when the faults healed is seen to get the lock. ``final`` reads the committed
history of ``lock/`` (the queue's keys and the register) from revision 1;
``_coordchecks.lock_fencing`` and ``lock_waiters`` check it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import httpx
import trio

from jepsen._client import open_http
from jepsen._history import FAIL, OK, UNKNOWN, Call
from jepsen._watchload import mark_end, read_history
from raftkv.client import (
    AsyncClient,
    AsyncHeldLock,
    ClientError,
    LeaseLost,
    RetryPolicy,
    Unavailable,
    create_revision,
    put,
)

if TYPE_CHECKING:
    from jepsen._workloads import Ctx

LOCK_PREFIX = "lock/"
LOCK_NAME = "lock/L"
LOCK_REGISTER = "lock/reg"
LOCK_TTL = 2  # seconds: the cluster's minimum above 1.5 election timeouts of at most 1 s
HOLD = (0.0, 0.15)  # seconds before each of a holder's writes
ZOMBIE_SHARE = 0.25  # tenures followed by a write with their token once they are over
LOCK_CLIENTS_MAX = 8  # sizes how long a waiter may go on past the deadline


def waiter_bound(ctx: Ctx, clients: int) -> float:
    """How long after the faults healed a waiter may wait: a lease left by a release that
    failed lives on for its TTL (a new leader gives it the whole TTL again), service returns
    within the recovery bound, and then every client ahead takes its turn."""
    from jepsen._nemesis import RECOVERY_BOUND

    return 2 * LOCK_TTL + RECOVERY_BOUND * ctx.timing.election_timeout + 2.0 * clients


@dataclass
class _LockClient:
    ctx: Ctx
    kv: AsyncClient
    process: str
    rng: random.Random
    give_up: float  # waiting may go on past the deadline (see the module), never beyond this

    async def tenure(self, k: int) -> bool:
        """One acquisition: ask, hold (fenced writes), release; each phase recorded. Whether
        it got the lock."""
        history = self.ctx.history
        asking: Call | None = history.begin(self.process, "acquire", LOCK_NAME, None, 0)
        releasing: Call | None = None
        try:
            with trio.move_on_at(self.give_up):
                async with self.kv.lock(LOCK_NAME, ttl=LOCK_TTL) as held:
                    assert asking is not None
                    history.record(replace(asking, value=str(held.token)), OK, "held", held.token)
                    asking = None
                    await self.writes(held, k)
                    releasing = history.begin(self.process, "release", LOCK_NAME, None, 0)
                if releasing is not None:
                    history.record(releasing, OK, "released", held.token)
                    if self.rng.random() < ZOMBIE_SHARE:
                        await self.late_write(held, k)
        except ClientError as exc:  # LeaseLost, Unavailable, OutcomeUnknown, ...
            if asking is not None:
                history.record(asking, FAIL, type(exc).__name__)
            else:  # the tenure ended early (a lost lease, a failed write): released on the way
                ended = releasing or history.begin(self.process, "release", LOCK_NAME, None, 0)
                history.record(ended, UNKNOWN, type(exc).__name__)
            await trio.sleep(0.05)
            return asking is None
        if asking is not None:  # gave up waiting
            history.record(asking, UNKNOWN, "gave up")
        return asking is None

    async def writes(self, held: AsyncHeldLock, k: int) -> None:
        history = self.ctx.history
        for j in range(self.rng.randint(1, 2)):
            await trio.sleep(self.rng.uniform(*HOLD))
            held.lease.check()  # LeaseLost: the lock may be another's by now
            value = f"{held.token}:{self.process}-{k}-{j}"
            call = history.begin(self.process, "lwrite", LOCK_REGISTER, value, 0)
            txn = self.kv.txn().compare(create_revision(held.key) == held.token)
            try:
                r = await txn.then(put(LOCK_REGISTER, value)).commit()
            except ClientError as exc:  # Unavailable: refused for certain; else it may apply
                history.record(
                    call, FAIL if isinstance(exc, Unavailable) else UNKNOWN, type(exc).__name__
                )
                raise
            if not r.succeeded:
                history.record(call, FAIL, "compare failed")
                raise LeaseLost(f"the guard of token {held.token} failed: the lock is gone")
            history.record(call, OK, "200", r.revision)

    async def late_write(self, held: AsyncHeldLock, k: int) -> None:
        """A write with the token of a tenure that is over, as from a holder that was paused
        or whose request was delayed: the guard must refuse it (``lzombie``)."""
        value = f"{held.token}:{self.process}-{k}-late"
        call = self.ctx.history.begin(self.process, "lzombie", LOCK_REGISTER, value, 0)
        txn = self.kv.txn().compare(create_revision(held.key) == held.token)
        try:
            r = await txn.then(put(LOCK_REGISTER, value)).commit()
        except ClientError as exc:
            outcome = FAIL if isinstance(exc, Unavailable) else UNKNOWN
            self.ctx.history.record(call, outcome, type(exc).__name__)
            return
        self.ctx.history.record(
            call,
            OK if r.succeeded else FAIL,
            "200" if r.succeeded else "compare failed",
            r.revision if r.succeeded else None,
        )


class LockWorkload:
    name = "lock"

    async def client(self, ctx: Ctx, process: int, rng: random.Random) -> None:
        urls = [n.url for n in ctx.cluster.members]
        rng.shuffle(urls)
        kv = AsyncClient(
            urls,
            timeout=ctx.client_timeout,
            retry=RetryPolicy(rounds=2, max_backoff=0.5),
            transport=httpx.AsyncHTTPTransport(),  # (given: no proxy from the environment)
        )
        give_up = ctx.deadline + waiter_bound(ctx, LOCK_CLIENTS_MAX) + 5.0
        client = _LockClient(ctx, kv, f"l{process}", rng, give_up)
        got = True  # a client that is waiting at the deadline goes on until it gets the lock
        async with kv:
            for k in range(1_000_000):
                if (ctx.done() and got) or trio.current_time() > give_up:
                    return
                got = await client.tenure(k)

    async def final(self, ctx: Ctx) -> None:
        """The committed history of ``lock/``, from revision 1, on the first member that gives
        it whole."""
        async with open_http(ctx.client_timeout) as http:
            end = await mark_end(ctx, http, LOCK_PREFIX)
            if end is None:
                return
            for node in ctx.cluster.members:
                op = await read_history(ctx, http, node, LOCK_PREFIX, end)
                if op.outcome == OK:
                    return

    @staticmethod
    def _clients(ctx: Ctx) -> int:
        return len({op.process for op in ctx.history.ops if op.f == "acquire"})

    def check(self, ctx: Ctx) -> list[str]:
        from jepsen import _coordchecks

        return [
            *_coordchecks.lock_fencing(ctx.history, LOCK_PREFIX, LOCK_NAME + "/", LOCK_REGISTER),
            *_coordchecks.lock_waiters(ctx.history, waiter_bound(ctx, self._clients(ctx))),
        ]
