"""Leases, locks and elections: lease ..., lock, elect."""

from __future__ import annotations

import os
import subprocess
import time

from raftkv.client import Leader, LeaseLost
from raftkv.kv import bytes_field

from ._common import Commands, Context, add_command, arg_bytes, positive

__all__ = ["register"]


def register(commands: Commands) -> None:
    lease = commands.add_parser("lease", help="grant, keep alive, look up, revoke, list leases")
    actions = lease.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    grant = add_command(
        actions, "grant", _grant, help="grant a lease of TTL seconds; prints its id"
    )
    grant.add_argument("ttl", type=positive, metavar="TTL")
    keep = add_command(
        actions,
        "keepalive",
        _keepalive,
        help="renew a lease every third of its TTL until Ctrl-C (prints each TTL)",
    )
    keep.add_argument("id", type=positive)
    keep.add_argument("--once", action="store_true", help="renew it once")
    revoke = add_command(
        actions, "revoke", _revoke, help="revoke a lease; prints how many keys it took"
    )
    revoke.add_argument("id", type=positive)
    ttl = add_command(
        actions, "ttl", _ttl, help="print a lease's TTL left and granted TTL (simple: as JSON)"
    )
    ttl.add_argument("id", type=positive)
    ttl.add_argument("--keys", action="store_true", help="with the keys attached to it")
    add_command(actions, "list", _list, help="print every lease id")

    lock = add_command(
        commands,
        "lock",
        _lock,
        help="run a command while holding a lock (exits with its status; its fencing token is "
        "in $RAFTKV_LOCK_TOKEN)",
        description="The command's output is its own; -w json or table print the lock's name, "
        "key and fencing token first.",
    )
    lock.add_argument("name")
    lock.add_argument("--ttl", type=positive, default=10, help="the lock's lease TTL (10 s)")
    lock.add_argument("cmd", nargs="*", metavar="-- COMMAND", help="the command, after --")

    elect = add_command(
        commands,
        "elect",
        _elect,
        help="campaign and hold leadership until Ctrl-C, or --listen to the leaders",
    )
    elect.add_argument("name")
    elect.add_argument("value", nargs="?", help="what to lead with (not with --listen)")
    elect.add_argument("--listen", action="store_true", help="print each leader as it changes")
    elect.add_argument("--ttl", type=positive, default=10, help="the campaign's lease TTL")


def _grant(ctx: Context) -> None:
    out = ctx.out
    lease = ctx.client.grant_lease(ctx.args.ttl)
    out.show(
        {"id": lease.id, "ttl": lease.ttl},
        ("ID", "TTL"),
        [(lease.id, lease.ttl)],
        lambda: out.line(str(lease.id)),
    )


def _keepalive(ctx: Context) -> None:
    args, out = ctx.args, ctx.out
    while True:
        ttl = ctx.client.keepalive(args.id)
        if out.format == "json":
            out.json({"id": args.id, "ttl": ttl})
        elif out.format == "table":
            out.table(("ID", "TTL"), [(args.id, ttl)], stream=True)
        else:
            out.line(str(ttl))
        out.flush()
        if args.once:
            return
        time.sleep(ttl / 3)


def _revoke(ctx: Context) -> None:
    out = ctx.out
    deleted = ctx.client.revoke_lease(ctx.args.id).deleted
    out.show(
        {"id": ctx.args.id, "deleted": deleted},
        ("ID", "KEYS DELETED"),
        [(ctx.args.id, deleted)],
        lambda: out.line(str(deleted)),
    )


def _ttl(ctx: Context) -> None:
    out = ctx.out
    status = ctx.client.lease_status(ctx.args.id, keys=ctx.args.keys)
    document: dict[str, object] = {
        "id": status.id,
        "ttl": status.ttl,
        "granted_ttl": status.granted_ttl,
    }
    if status.keys is not None:
        document["keys"] = [bytes_field("key", key) for key in status.keys]
    keys = None if status.keys is None else b", ".join(status.keys)
    out.show(
        document,
        ("ID", "TTL", "GRANTED TTL", "KEYS"),
        [(status.id, status.ttl, status.granted_ttl, keys)],
        lambda: out.json(document),
    )


def _list(ctx: Context) -> None:
    out = ctx.out
    leases = ctx.client.leases()

    def simple() -> None:
        for lease in leases:
            out.line(str(lease))

    out.show({"leases": list(leases)}, ("ID",), [(lease,) for lease in leases], simple)


def _lock(ctx: Context) -> int:
    """Run the command while holding the lock; its exit status. A lock lost meanwhile ends the
    command (it may be another's now): 1."""
    args, out = ctx.args, ctx.out
    cmd = args.cmd
    if not cmd:
        raise ValueError("raftkv lock NAME -- COMMAND...: no command given")
    with ctx.client.lock(arg_bytes(args.name), ttl=args.ttl) as held:
        if out.format != "simple":  # the lock's own answer, before the command's output
            document = {
                **bytes_field("name", held.name),
                **bytes_field("key", held.key),
                "token": held.token,
            }
            row = (held.name, held.key, held.token)
            out.show(document, ("NAME", "KEY", "TOKEN"), [row], lambda: None)
            out.flush()
        env = {**os.environ, "RAFTKV_LOCK_TOKEN": str(held.token)}
        try:
            proc = subprocess.Popen(cmd, env=env)
        except OSError as exc:
            raise ValueError(f"cannot run {cmd[0]!r}: {exc.strerror or exc}") from None
        try:
            while proc.poll() is None and not held.lease.wait_lost(timeout=0.1):
                pass
        finally:
            if proc.poll() is None:  # lost, or Ctrl-C: the command ends before the lock does
                proc.terminate()
                proc.wait()
        if held.lease.is_lost:
            raise LeaseLost(f"the lock was lost ({held.lease.lost_reason}): the command was ended")
        return proc.returncode


def _elect(ctx: Context) -> None:
    args = ctx.args
    if args.listen == (args.value is not None):
        raise ValueError("raftkv elect NAME VALUE campaigns; raftkv elect --listen NAME listens")
    with ctx.client.election(arg_bytes(args.name), ttl=args.ttl) as election:
        if args.listen:
            with election.observe() as leaders:
                for leader in leaders:
                    _write_leader(ctx, leader)
        leader = election.campaign(arg_bytes(args.value))
        _write_leader(ctx, leader)
        try:
            election.wait_lost()
        except KeyboardInterrupt:
            election.resign()
            raise
        raise LeaseLost("leadership lost: the campaign's lease expired or its key was deleted")


def _write_leader(ctx: Context, leader: Leader) -> None:
    out = ctx.out
    if out.format == "json":
        document = {**bytes_field("key", leader.key), **bytes_field("value", leader.value)}
        out.json({**document, "revision": leader.revision})
    elif out.format == "table":
        rows = [(leader.key, leader.value, leader.revision)]
        out.table(("KEY", "VALUE", "REVISION"), rows, stream=True)
    else:
        out.write(leader.key + b"\n" + leader.value + b"\n")
    out.flush()
