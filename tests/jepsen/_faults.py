"""The fault families. Each fault injects, holds (in election timeouts), heals, and recovers.

A window's ``minority`` lists nodes that no quorum can include while it lasts: writes sent to
them must not be acknowledged, their serializable reads must still answer (``_checks``).
"""

from __future__ import annotations

import random
import signal
from typing import TYPE_CHECKING

import trio

from jepsen import _disk, _powerloss
from jepsen._client import send
from jepsen._history import OK, UNKNOWN
from jepsen._nemesis import FaultFn, Nemesis
from jepsen._workloads import REGISTER_KEYS, get_register, put_register

if TYPE_CHECKING:
    from jepsen._cluster import Node
    from jepsen._history import Window


def _others(nem: Nemesis, node: int) -> list[int]:
    return [n.id for n in nem.ctx.cluster.members if n.id != node]


async def _partition(
    nem: Nemesis, name: str, minority: list[int], detail: str, rng: random.Random
) -> None:
    majority = [i for i in _others(nem, -1) if i not in minority]
    nem.lab.drop_between(minority, majority)
    w = nem.history.open_window(
        "partition",
        name,
        detail,
        nodes=minority,
        minority=minority,
        mechanism=nem.lab.partition_mechanism,
    )
    await nem.hold_then_heal(w, (3, 6), rng, nem.lab.heal_links)


async def isolate_leader(nem: Nemesis, rng: random.Random) -> None:
    leader = await nem.leader()
    if not leader:
        return
    await _partition(nem, "isolate-leader", [leader], f"leader {leader} cut off both ways", rng)


async def isolate_follower(nem: Nemesis, rng: random.Random) -> None:
    leader = await nem.leader()
    follower = rng.choice([i for i in _others(nem, leader)])
    await _partition(nem, "isolate-follower", [follower], f"follower {follower} cut off", rng)


async def split(nem: Nemesis, rng: random.Random) -> None:
    ids = [n.id for n in nem.ctx.cluster.members]
    rng.shuffle(ids)
    minority = sorted(ids[: (len(ids) - 1) // 2])
    await _partition(nem, "split", minority, f"{minority} | {sorted(ids[len(minority) :])}", rng)


async def bridge(nem: Nemesis, rng: random.Random) -> None:
    """Two halves that see only a bridge node: every node can still be in some majority."""
    ids = [n.id for n in nem.ctx.cluster.members]
    rng.shuffle(ids)
    mid = len(ids) // 2
    left, middle, right = sorted(ids[:mid]), ids[mid], sorted(ids[mid + 1 :])
    nem.lab.drop_between(left, right)
    w = nem.history.open_window(
        "bridge",
        "bridge",
        f"{left} | {middle} | {right}",
        nodes=[middle],
        mechanism=nem.lab.partition_mechanism,
    )
    await nem.hold_then_heal(w, (3, 6), rng, nem.lab.heal_links)


async def oneway(nem: Nemesis, rng: random.Random) -> None:
    """One node's packets to its peers are lost (out), or its peers' packets to it (in)."""
    leader = await nem.leader()
    victim = leader if leader and rng.random() < 0.5 else rng.choice(_others(nem, -1))
    direction = rng.choice(["out", "in"])
    for peer in _others(nem, victim):
        if direction == "out":
            nem.lab.drop(victim, peer)
        else:
            nem.lab.drop(peer, victim)
    role = "leader" if victim == leader else "node"
    what = "sends nothing (receives)" if direction == "out" else "receives nothing (sends)"
    w = nem.history.open_window(
        "oneway",
        f"oneway-{direction}",
        f"{role} {victim} {what}",
        nodes=[victim],
        minority=[victim],
        mechanism=nem.lab.partition_mechanism,
    )
    await nem.hold_then_heal(w, (3, 6), rng, nem.lab.heal_links)


async def chaos(nem: Nemesis, rng: random.Random) -> None:
    """Packet chaos between peers on one to all nodes: loss, delay, reordering (or netem)."""
    kinds = ["netem"] if nem.lab.caps.netem else []
    kinds += ["loss", "reorder"] if nem.lab.caps.bpf_random else []
    kinds += ["delay"] if nem.lab.caps.htb_u32 else []
    if not kinds:
        nem.history.skipped["netem: no tc mechanism on this kernel"] += 1
        return
    if not nem.lab.caps.netem:
        nem.history.skipped["duplication: needs sch_netem"] += 1
    ids = [n.id for n in nem.ctx.cluster.members]
    victims = sorted(rng.sample(ids, rng.randint(1, len(ids))))
    kind = rng.choice(kinds)
    percent = rng.choice([5, 10, 20, 35]) if kind == "loss" else rng.choice([10, 30, 50])
    done = [nem.lab.chaos(v, kind, percent) for v in victims]
    w = nem.history.open_window(
        "netem", kind, f"{done[0]} on {victims}", nodes=victims, mechanism=done[0]
    )
    await nem.hold_then_heal(w, (3, 8), rng, nem.lab.calm)


async def pause_leader(nem: Nemesis, rng: random.Random) -> None:
    leader = await nem.leader()
    node = nem.ctx.cluster.nodes.get(leader) if leader else rng.choice(nem.ctx.cluster.members)
    if node is None or not node.alive():
        return
    node.signal(signal.SIGSTOP)
    w = nem.history.open_window(
        "pause", "pause", f"SIGSTOP node {node.id}", nodes=[node.id], mechanism="SIGSTOP/SIGCONT"
    )
    await nem.hold_then_heal(w, (2, 4), rng, lambda: node.signal(signal.SIGCONT))


async def resume_and_read(nem: Nemesis, rng: random.Random) -> None:
    """Pause the leader cut off from its peers, let the majority elect and write, resume it and
    read from it at once.

    The cut is what keeps the window open: without it the new leader's heartbeats wait in the
    old leader's socket buffers and depose it the moment it resumes, before a read gets in.
    """
    leader = await nem.leader()
    if not leader:
        return
    old = nem.ctx.cluster.nodes[leader]
    old.signal(signal.SIGSTOP)
    others = _others(nem, leader)
    nem.lab.drop_between([leader], others)
    w = nem.history.open_window(
        "pause",
        "resume-and-read",
        f"SIGSTOP leader {leader}, majority elects and writes, SIGCONT, read from it",
        nodes=[leader],
        mechanism="SIGSTOP + " + nem.lab.partition_mechanism,
    )
    key = rng.choice(REGISTER_KEYS)
    new = await nem.wait_new_leader(leader, [nem.ctx.cluster.nodes[i] for i in others])
    for k in range(100):
        if not new or trio.current_time() > nem.ctx.deadline + 30 * nem.et:
            break
        nem.probes += 1
        got = await put_register(
            nem.ctx,
            nem.http,
            "nemesis",
            nem.ctx.cluster.nodes[new],
            key=key,
            value=f"rr{nem.probes}-{k}",
        )
        if got == OK:
            break
    old.signal(signal.SIGCONT)
    w.minority, w.minority_from = [leader], nem.history.now()
    w.notes.append(f"new leader {new}; read {key} from {leader} at once")
    for _ in range(3):
        await get_register(nem.ctx, nem.http, "nemesis", old, key=key)
    await nem.hold_then_heal(w, (1, 2), rng, nem.lab.heal_links)


async def kill_one(nem: Nemesis, rng: random.Random) -> None:
    leader = await nem.leader()
    node = nem.ctx.cluster.nodes.get(leader) if leader and rng.random() < 0.5 else None
    node = node or rng.choice(nem.ctx.cluster.members)
    node.kill9()
    w = nem.history.open_window(
        "kill", "kill", f"kill -9 node {node.id}", nodes=[node.id], mechanism="SIGKILL"
    )
    await nem.hold_then_heal(w, (1, 3), rng, node.start, restarted=True)


async def kill_all(nem: Nemesis, rng: random.Random, power_loss: bool = False) -> None:
    nodes = [n for n in nem.ctx.cluster.members]
    for n in nodes:
        n.kill9()
    name = "power-loss" if power_loss else "kill-all"
    w = nem.history.open_window(
        "kill",
        name,
        "kill -9 every node" + (", unsynced writes dropped" if power_loss else ""),
        nodes=[n.id for n in nodes],
        mechanism="SIGKILL" + (" + sync journal rollback" if power_loss else ""),
    )
    if power_loss:
        for n in nodes:
            undone = _powerloss.roll_back(n.data_dir, nem.ctx.cluster.journal(n.id))
            w.notes.append(f"node {n.id}: {undone}")
    await nem.hold_then_heal(w, (0.5, 1.5), rng, lambda: [n.start() for n in nodes], restarted=True)


async def power_loss(nem: Nemesis, rng: random.Random) -> None:
    if not nem.ctx.cluster.sync_journal:
        nem.history.skipped["power-loss: nodes run without the sync journal"] += 1
        return
    await kill_all(nem, rng, power_loss=True)


async def churn(nem: Nemesis, rng: random.Random) -> None:
    """Remove a member (the leader half the time) and add a fresh one, under load."""
    cluster = nem.ctx.cluster
    leader = await nem.leader()
    voters = await _settled_members(nem)
    if len(voters) < 3:
        return
    victim = cluster.nodes.get(leader) if leader and rng.random() < 0.5 else rng.choice(voters)
    assert victim is not None
    via = rng.choice([n for n in voters if n.id != victim.id])
    w = nem.history.open_window(
        "churn",
        "remove+add",
        f"remove {victim.id}" + (" (leader)" if victim.id == leader else ""),
        nodes=[victim.id],
        mechanism="DELETE /<id>, POST /<id> + --join",
    )
    a = await _member_change(nem, "DELETE", via, victim.id, None)
    if a != OK:
        w.notes.append(f"remove {victim.id} via {via.id}: {a}")
        nem.close(w)
        return
    victim.removed = True
    code = await trio.to_thread.run_sync(victim.reap, 20 * nem.et)
    w.notes.append(f"node {victim.id} exited with {code}")
    if code != 0:
        nem.ctx.problems.append(
            f"removed node {victim.id} did not exit 0 by itself: {code}; "
            f"log: {victim.log_tail(600)}"
        )
        victim.kill9()
    joiner = cluster.add_joiner()
    via = rng.choice([n for n in voters if n.id != victim.id])
    a = await _member_change(nem, "POST", via, joiner.id, joiner.peer_url)
    w.detail += f", add {joiner.id}"
    if a == OK:
        joiner.start()
        await _until_answers(nem, w, joiner)
    else:
        w.notes.append(f"add {joiner.id} via {via.id}: {a}")
        joiner.removed = True
    nem.close(w)
    await nem.recover(w)


async def _until_answers(nem: Nemesis, w: Window, node: Node) -> None:
    """Wait (bounded) until a started node answers HTTP: the next fault may aim at it, and on a
    loaded machine a fresh process takes seconds to serve."""
    started = nem.history.now()
    with trio.move_on_after(30):
        while await nem.status(node) is None:
            await trio.sleep(0.05)
    w.notes.append(f"node {node.id} answered after {nem.history.now() - started:.2f}s")


async def _settled_members(nem: Nemesis) -> list[Node]:
    """Live members that are voters by their own account (a fresh joiner may know nothing yet)."""
    out = []
    for n in nem.ctx.cluster.members:
        s = await nem.status(n) if n.alive() else None
        members = s.get("members", []) if s else []
        if any(m.get("id") == n.id and m.get("voter") for m in members):
            out.append(n)
    return out


async def _member_change(
    nem: Nemesis, method: str, via: Node, member: int, body: str | None
) -> str:
    """One membership change, retried (bounded) while another is in flight or no leader."""
    status, unsure = "", False
    for _ in range(50):
        call = nem.history.begin("nemesis", "member", str(member), method, via.id)
        a = await send(nem.http, method, f"{via.url}/{member}", content=body)
        nem.history.record(call, a.outcome, a.status, a.index)
        if a.outcome == OK:
            return OK
        status = a.status
        unsure = unsure or a.outcome == UNKNOWN
        gone = a.response is not None and a.response.status_code == 404
        if gone and method == "DELETE" and unsure:
            return OK  # an earlier attempt whose answer was lost did remove it
        if a.response is not None and a.response.status_code not in (409, 503):
            return status
        await trio.sleep(nem.et / 2)
    return status


async def disk_full(nem: Nemesis, rng: random.Random) -> None:
    await _disk.fill_and_free(nem, rng)


FAMILIES: dict[str, list[FaultFn]] = {
    "partition": [isolate_leader, isolate_follower, split],
    "bridge": [bridge],
    "oneway": [oneway],
    "netem": [chaos],
    "pause": [pause_leader, resume_and_read],
    "kill": [kill_one, kill_all, power_loss],
    "churn": [churn],
    "disk": [disk_full],
}


def fault_name(fn: FaultFn) -> str:
    return fn.__name__.replace("_", "-")


def select(spec: list[str]) -> dict[str, list[FaultFn]]:
    """Families (``kill``) or single faults (``kill:power-loss``) -> the faults to draw from."""
    chosen: dict[str, list[FaultFn]] = {}
    for item in spec:
        family, _, fault = item.partition(":")
        if family not in FAMILIES:
            raise ValueError(f"unknown nemesis family {family!r}; known: {', '.join(FAMILIES)}")
        fns = [f for f in FAMILIES[family] if not fault or fault_name(f) == fault]
        if not fns:
            names = ", ".join(fault_name(f) for f in FAMILIES[family])
            raise ValueError(f"{family} has no fault {fault!r}; it has: {names}")
        chosen.setdefault(family, [])
        chosen[family] += [f for f in fns if f not in chosen[family]]
    return chosen
