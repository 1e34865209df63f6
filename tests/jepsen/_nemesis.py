"""The nemesis: faults drawn at random (seeded) from the enabled families, one at a time.

Each fault is an async function of ``(nemesis, rng)`` in ``_faults.FAMILIES``: it injects,
opens a ``Window`` in the history, holds, heals, and lets ``recover`` measure how long until
the cluster serves a write again. While a window names a ``minority``, ``probe_minority``
sends serializable reads to those nodes (they must still answer).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import trio

from jepsen._client import send
from jepsen._history import OK, Window
from jepsen._workloads import REGISTER_KEYS, Ctx, get_register

if TYPE_CHECKING:
    from jepsen._cluster import Node
    from jepsen._netns import Lab

FaultFn = Callable[["Nemesis", random.Random], Awaitable[None]]
RECOVERY_BOUND = 5  # election timeouts: how long after a heal the cluster must serve again


@dataclass
class Nemesis:
    ctx: Ctx
    lab: Lab
    families: dict[str, list[FaultFn]]
    http: httpx.AsyncClient
    probes: int = 0

    @property
    def et(self) -> float:
        return self.ctx.timing.election_timeout

    @property
    def history(self):  # type: ignore[no-untyped-def]
        return self.ctx.history

    async def status(self, node: Node) -> dict | None:
        try:
            r = await self.http.get(node.url + "/-/status", timeout=0.5)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    async def leader(self, among: list[Node] | None = None, timeout: float | None = None) -> int:
        """A node that says it leads and that the others it can be asked agree on; 0: none."""
        nodes = among if among is not None else [n for n in self.ctx.cluster.members if n.alive()]
        with trio.move_on_after(timeout if timeout is not None else 4 * self.et):
            while True:
                for n in nodes:
                    s = await self.status(n)
                    if s and s.get("role") == "leader" and s.get("id") == n.id:
                        return n.id
                await trio.sleep(0.05)
        return 0

    async def wait_new_leader(self, old: int, among: list[Node]) -> int:
        """Bounded wait until one of ``among`` (not ``old``) leads; 0 if none did."""
        with trio.move_on_after(10 * self.et):
            while True:
                found = await self.leader([n for n in among if n.id != old], timeout=self.et)
                if found:
                    return found
        return 0

    async def hold(self, window: Window, low: float, high: float, rng: random.Random) -> None:
        """Keep the fault for low..high election timeouts, probing the minority meanwhile."""
        with trio.move_on_after(rng.uniform(low, high) * self.et):
            await self.probe_minority(window)

    async def hold_then_heal(
        self,
        window: Window,
        hold: tuple[float, float],
        rng: random.Random,
        heal: Callable[[], object],
        restarted: bool = False,
    ) -> None:
        """The common end of a fault: hold it, heal it, close the window, time the recovery
        (after a restart, from when the processes answer again)."""
        await self.hold(window, *hold, rng)
        heal()
        self.close(window)
        if restarted:
            await self.wait_started(window, self.history.now())
        await self.recover(window)
        if restarted:
            await self.wait_all_up(window)

    async def probe_minority(self, window: Window) -> None:
        nodes = [self.ctx.cluster.nodes[i] for i in window.minority]
        for k in range(100_000):
            for n in nodes:
                await get_register(
                    self.ctx,
                    self.http,
                    "nemesis",
                    n,
                    key=REGISTER_KEYS[k % len(REGISTER_KEYS)],
                    serializable=True,
                )
            await trio.sleep(0.2)

    def close(self, window: Window) -> None:
        window.end = self.history.now()

    async def recover(self, window: Window) -> None:
        """Time from now until a write is acknowledged by any member (bounded).

        Every live member is probed at once, again and again, so one node that hangs does not
        hide another that already serves.
        """
        healed = self.history.now()
        nodes = [n for n in self.ctx.cluster.members if n.alive()]
        with trio.move_on_after((RECOVERY_BOUND + 10) * self.et):
            async with trio.open_nursery() as nursery:
                for n in nodes:
                    nursery.start_soon(
                        self._probe_until_served, n, window, healed, nursery.cancel_scope
                    )

    async def _probe_until_served(
        self, node: Node, window: Window, healed: float, served: trio.CancelScope
    ) -> None:
        for k in range(100_000):
            self.probes += 1
            key = f"probe/{self.probes}"
            call = self.history.begin("nemesis", "probe", key, str(k), node.id)
            a = await send(self.http, "PUT", f"{node.url}/{key}", content=str(k))
            self.history.record(call, a.outcome, a.status, a.index)
            if a.outcome == OK:
                window.recovered_after = self.history.now() - healed
                served.cancel()
                return
            await trio.sleep(0.05)

    async def wait_started(self, window: Window, started: float) -> None:
        """After a restart: wait (bounded) until a majority of members answer HTTP again, and
        note how long the processes took; the recovery bound counts from then."""
        members = self.ctx.cluster.members
        with trio.move_on_after(30):
            while True:
                up = [s for s in [await self.status(n) for n in members] if s]
                if len(up) > len(members) // 2:
                    break
                await trio.sleep(0.05)
        window.notes.append(f"processes answered after {self.history.now() - started:.2f}s")

    async def wait_all_up(self, window: Window) -> None:
        """After a restart: wait (bounded) until every running member answers HTTP, so that the
        next fault does not pick a node that is still starting (a cut-off node must answer
        serializable reads, and one that is not listening yet cannot)."""
        started = self.history.now()
        with trio.move_on_after(30):
            while True:
                running = [n for n in self.ctx.cluster.members if n.alive()]
                if all([await self.status(n) for n in running]):
                    window.notes.append(
                        f"every member answered {self.history.now() - started:.2f}s later"
                    )
                    return
                await trio.sleep(0.05)
        window.notes.append("not every member answered within 30 s")

    async def run(self, rng: random.Random) -> None:
        """Faults until the clients' deadline, each healed before the next, then a quiet end.

        Families are drawn at random; within a family the faults come as a shuffled deck, so a
        short run still goes through different faults before one repeats.
        """
        names = sorted(self.families)
        decks: dict[str, list[FaultFn]] = {}
        margin = 3 * self.et
        for _ in range(10_000):
            await trio.sleep(rng.uniform(1.0, 2.0) * self.et)
            if trio.current_time() > self.ctx.deadline - margin:
                return
            family = rng.choice(names)
            if not decks.get(family):
                decks[family] = rng.sample(self.families[family], len(self.families[family]))
            await decks[family].pop()(self, rng)
