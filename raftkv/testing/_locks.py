"""``LockClients``: the lock workload's clients, driven one move at a time by a schedule.

Each client loops: acquire (a compare-and-set of ``lock`` from empty to a holder id unique to
the attempt), write the protected register ``fenced`` once or twice with its token (the index
its acquire applied at), release (a compare-and-set back to empty). Every request goes to a
random up node, as a client failing over would. A client moves on only once the fate of its
request is certain: answered, refused, or as the committed log tells when its node went down
or lags (``ClientHistory.fate``: what a client reading back after a leader change learns). So
it never writes the protected register outside what it knows to be its tenure, and never
leaves a write behind it that could still commit.

``finish`` is the liveness half: after the faults stop, every client must acquire (and release)
the lock again within a bound. The judgement of the history is ``check_locks``.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._clients import ClientOp
from ._liveness import LivenessFailure
from ._lockcheck import FENCED_KEY, LOCK_KEY, LockViolation, fenced_value

if TYPE_CHECKING:
    from ._cluster import Cluster

__all__ = ["LockClients"]


class _State(enum.Enum):
    IDLE = "idle"
    ACQUIRING = "acquiring"
    HOLDING = "holding"
    WRITING = "writing"
    RELEASING = "releasing"


@dataclass(slots=True)
class _Client:
    id: int
    state: _State = _State.IDLE
    holder: str = ""
    token: int = 0
    writes: int = 0  # protected writes tried in this tenure
    releases: int = 0  # release requests sent in this tenure
    op: ClientOp | None = None
    tenures: int = 0  # completed: acquired, then released


class LockClients:
    def __init__(self, cluster: Cluster, rng: random.Random, clients: int = 2) -> None:
        self.cluster = cluster
        self.rng = rng
        self.clients = [_Client(i) for i in range(1, clients + 1)]

    def step(self) -> None:
        """One move of one client."""
        self._advance(self.rng.choice(self.clients))

    def _advance(self, client: _Client) -> None:
        op = client.op
        if op is not None:
            done = self._outcome(op)
            if done is None:
                return  # still waiting for its answer
            if op.ret is None:
                op.settled = self.cluster.clients.clock  # its node may still answer, late
            client.op = None
            self._settle(client, op, done)
            return
        self._next_request(client)

    def _outcome(self, op: ClientOp) -> bool | None:
        """True: applied; False: certainly never; None: not known yet. Its node answers, or,
        if that node went down or lags, the committed log tells (``ClientHistory.fate``)."""
        return self.cluster.clients.fate(op)

    def _settle(self, client: _Client, op: ClientOp, applied: bool) -> None:
        took_effect = applied and bool(op.ok if op.ret is not None else op.took_effect)
        match client.state:
            case _State.ACQUIRING:
                if took_effect:
                    assert op.index is not None
                    client.state, client.token, client.writes = _State.HOLDING, op.index, 0
                    client.releases = 0
                else:
                    client.state = _State.IDLE  # refused, or held by another: wait and retry
            case _State.WRITING:
                client.state = _State.HOLDING
            case _State.RELEASING:
                if applied and not took_effect:
                    raise LockViolation(
                        f"{op.name}: client {client.id} ({client.holder}) released a lock it "
                        "held, and the lock was not its own"
                    )
                if applied:
                    client.state = _State.IDLE
                    client.tenures += 1
                else:
                    client.state = _State.HOLDING  # the release certainly failed: again
            case _State.IDLE | _State.HOLDING:
                raise AssertionError(f"client {client.id} waited in state {client.state}")

    def _next_request(self, client: _Client) -> None:
        up = self.cluster.up_ids
        if not up:
            return
        node = self.rng.choice(up)
        if client.state is _State.IDLE:
            client.holder = f"c{client.id}.{self.cluster.unique_value('')}"
            client.state = _State.ACQUIRING
            data = f"{LOCK_KEY}={client.holder}?"
        elif client.state is _State.HOLDING and client.writes < 2 and self.rng.random() < 0.7:
            client.writes += 1
            client.state = _State.WRITING
            data = f"{FENCED_KEY}={fenced_value(client.holder, client.token, client.writes)}"
        else:
            client.releases += 1
            client.state = _State.RELEASING
            data = f"{LOCK_KEY}=?{client.holder}#{client.releases}"
        client.op = self.cluster.propose(node, data.encode())

    # -- liveness ----------------------------------------------------------------------------------

    def finish(self, timeouts: int = 10) -> None:
        """After the faults: every client completes a tenure within ``timeouts`` election
        timeouts of moves (ticks with every client moving). A request lost on the way keeps
        its fate open until the term changes (nothing re-forwards a proposal), which may be
        never: once it has waited an election timeout with the cluster quiet and no log
        holding it, its client takes it as failed (``_never_arrives``)."""
        c = self.cluster
        election = c.node_config(1).election_ticks
        goal = {client.id: client.tenures + 1 for client in self.clients}
        waited = dict.fromkeys(goal, 0)  # rounds each client's request has gone unanswered
        for _ in range(timeouts * election * 4):
            if all(client.tenures >= goal[client.id] for client in self.clients):
                return
            for client in self.clients:
                before = client.op
                self._advance(client)
                same = client.op is not None and client.op is before
                waited[client.id] = waited[client.id] + 1 if same else 0
            c.run()
            for client in self.clients:
                if waited[client.id] >= election and self._never_arrives(client.op):
                    waited[client.id] = 0
                    op, client.op = client.op, None
                    assert op is not None
                    self._settle(client, op, False)
        states = ", ".join(
            f"client {client.id}: {client.state.value} {client.holder}" for client in self.clients
        )
        raise LivenessFailure(f"a lock waiter did not acquire after the faults stopped: {states}")

    def _never_arrives(self, op: ClientOp | None) -> bool:
        """Once the cluster is quiet (everything delivered, every Ready handled): no node's
        log holds the request, so it can never commit. Its forward was lost on the way, and
        nothing re-forwards a proposal; the client would learn as much from its request
        timing out and reading back, with nothing left in flight to arrive late."""
        if op is None or op.ret is not None or op.error is not None:
            return False
        c = self.cluster
        assert not c.in_flight and not c.held, "called once the cluster is quiet"
        for node in c.nodes.values():
            store = node.store
            first, last = store.first_index(), store.last_index()
            if last >= first and any(e.data == op.data for e in store.entries(first, last + 1)):
                return False
        return True
