"""The cluster itself: member ..., leader ..., endpoint health|status, status."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raftkv.client import Client, ClientError, Member, RetryPolicy

from ._common import EXIT_FAILED, Commands, Context, add_command, positive
from ._output import cell

__all__ = ["register"]

# A probe of one endpoint asks it once: its answer, or why there is none, is the point.
_ONCE = RetryPolicy(rounds=1, backoff=0, max_backoff=0, jitter=False)
_STATUS_HEADERS = (
    "ENDPOINT",
    "ID",
    "VERSION",
    "KEYS",
    "REVISION",
    "IS LEADER",
    "IS LEARNER",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "ERRORS",
)


def register(commands: Commands) -> None:
    member = commands.add_parser(
        "member", aliases=["members"], help="list, add, promote or remove cluster members"
    )
    member.set_defaults(run=_member_list, action=None)
    actions = member.add_subparsers(title="actions", dest="action", metavar="ACTION")
    add_command(
        actions,
        "list",
        _member_list,
        help="the members, with each one's role, applied index and health (the default)",
    )
    add = add_command(
        actions, "add", _member_add, help="add a member (it joins as a learner, then is promoted)"
    )
    add.add_argument("id", type=positive)
    add.add_argument("peer_url")
    promote = add_command(
        actions, "promote", _member_promote, help="make a caught-up learner a voter now"
    )
    promote.add_argument("id", type=positive)
    remove = add_command(
        actions, "remove", _member_remove, help="remove a member (it then exits by itself)"
    )
    remove.add_argument("id", type=positive)

    leader = commands.add_parser("leader", help="show the leader, or hand leadership over")
    leader.set_defaults(run=_leader_show, action=None)
    leader_actions = leader.add_subparsers(title="actions", dest="action", metavar="ACTION")
    add_command(leader_actions, "show", _leader_show, help="print the leader's id (the default)")
    transfer = add_command(
        leader_actions, "transfer", _leader_transfer, help="make member ID the leader"
    )
    transfer.add_argument("id", type=positive)

    endpoint = commands.add_parser("endpoint", help="the health or status of each endpoint")
    endpoint_actions = endpoint.add_subparsers(
        title="actions", dest="action", metavar="ACTION", required=True
    )
    for name, run, what in (
        ("health", _endpoint_health, "whether each endpoint can serve (exit 1 if one cannot)"),
        ("status", _endpoint_status, "each endpoint's id, version, role, term and indexes"),
    ):
        action = add_command(endpoint_actions, name, run, help=what)
        action.add_argument(
            "--cluster",
            action="store_true",
            help="every member's client URL (asked of --endpoints), not --endpoints themselves",
        )

    add_command(commands, "status", _status, help="the answering node's status (simple: JSON)")


def _probe(ctx: Context, endpoint: str) -> Client:
    client = ctx.client_for(endpoint)
    client.retry = _ONCE
    return client


# -- members --


@dataclass(frozen=True, slots=True)
class _MemberView:
    member: Member
    applied: int | None = None
    health: str | None = None  # None: not asked

    @property
    def role(self) -> str:
        m = self.member
        return "leader" if m.leader else ("voter" if m.voter else "learner")


def _member_list(ctx: Context) -> None:
    views = [_view(ctx, m) for m in ctx.client.members()]
    _write_members(ctx, views, probed=True)


def _view(ctx: Context, member: Member) -> _MemberView:
    """The member, and what its own node says: applied index and health."""
    if member.client_url is None:
        return _MemberView(member, None, "unknown (no client URL published)")
    probe = _probe(ctx, member.client_url)
    try:
        applied = probe.status().get("applied_index")
        health = probe.health()
    except ClientError as exc:
        return _MemberView(member, None, f"unreachable: {exc}")
    return _MemberView(member, applied if isinstance(applied, int) else None, health["health"])


def _member_add(ctx: Context) -> None:
    _write_members(
        ctx, [_MemberView(m) for m in ctx.client.add_member(ctx.args.id, ctx.args.peer_url)]
    )


def _member_promote(ctx: Context) -> None:
    _write_members(ctx, [_MemberView(m) for m in ctx.client.promote_member(ctx.args.id)])


def _member_remove(ctx: Context) -> None:
    _write_members(ctx, [_MemberView(m) for m in ctx.client.remove_member(ctx.args.id)])


def _write_members(ctx: Context, views: Sequence[_MemberView], *, probed: bool = False) -> None:
    headers = ["ID", "ROLE", "PEER URL", "CLIENT URL"] + (["APPLIED", "HEALTH"] if probed else [])
    rows: list[list[object]] = []
    for v in views:
        row: list[object] = [v.member.id, v.role, v.member.peer_url, v.member.client_url or "-"]
        if probed:
            row += [v.applied if v.applied is not None else "-", v.health]
        rows.append(row)
    leader = next((v.member.id for v in views if v.member.leader), None)
    document = {"members": [_member_json(v, probed=probed) for v in views], "leader": leader}
    ctx.out.show(document, headers, rows, lambda: _columns(ctx, headers, rows))


def _member_json(view: _MemberView, *, probed: bool) -> dict[str, Any]:
    m = view.member
    document: dict[str, Any] = {
        "id": m.id,
        "role": view.role,
        "peer_url": m.peer_url,
        "client_url": m.client_url,
        "voter": m.voter,
        "leader": m.leader,
    }
    if probed:
        document |= {"applied_index": view.applied, "health": view.health}
    return document


def _columns(ctx: Context, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Space-aligned columns, the last one as it is (the plain form of a small table)."""
    lines = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers) - 1)]
    for line in lines:
        padded = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        ctx.out.line("  ".join([*padded, line[-1]]))


# -- leader --


def _leader_show(ctx: Context) -> None:
    out = ctx.out
    status = ctx.client.status()
    leader, term = status.get("leader"), status.get("term")
    out.show(
        {"leader": leader, "term": term},
        ("LEADER", "TERM"),
        [(leader, term)],
        lambda: out.line(str(leader) if leader else "no leader"),
    )


def _leader_transfer(ctx: Context) -> None:
    out, target = ctx.out, ctx.args.id
    ctx.client.transfer_leadership(target)
    out.show(
        {"leader": target},
        ("LEADER",),
        [(target,)],
        lambda: out.line(f"leadership transferred to {target}"),
    )


# -- endpoints --


def _endpoints(ctx: Context) -> list[str]:
    if ctx.args.cluster:
        urls = [m.client_url for m in ctx.client.members() if m.client_url]
        if not urls:
            raise ValueError("no member has published a client URL: give --endpoints instead")
        return urls
    return [url.strip() for url in ctx.args.endpoints.split(",") if url.strip()]


def _endpoint_health(ctx: Context) -> int | None:
    out = ctx.out
    results: list[dict[str, Any]] = []
    for endpoint in _endpoints(ctx):
        started = time.monotonic()
        error: str | None
        try:
            answer = str(_probe(ctx, endpoint).health()["health"])
        except ClientError as exc:
            error = str(exc)
        else:
            error = None if answer == "ok" else answer
        took = f"{(time.monotonic() - started) * 1000:.1f}ms"
        results.append(
            {"endpoint": endpoint, "health": error is None, "took": took, "error": error}
        )

    def simple() -> None:
        for r in results:
            if r["health"]:
                out.line(f"{r['endpoint']} is healthy: took = {r['took']}")
            else:
                out.line(f"{r['endpoint']} is unhealthy: took = {r['took']}, error: {r['error']}")

    rows = [(r["endpoint"], r["health"], r["took"], r["error"]) for r in results]
    out.show(results, ("ENDPOINT", "HEALTH", "TOOK", "ERROR"), rows, simple)
    return None if all(r["health"] for r in results) else EXIT_FAILED


def _endpoint_status(ctx: Context) -> int | None:
    out = ctx.out
    documents: list[dict[str, Any]] = []
    rows: list[tuple[object, ...]] = []
    for endpoint in _endpoints(ctx):
        try:
            status = _probe(ctx, endpoint).status()
        except ClientError as exc:
            documents.append({"endpoint": endpoint, "error": str(exc)})
            rows.append((endpoint, *[None] * (len(_STATUS_HEADERS) - 2), str(exc)))
            continue
        documents.append({"endpoint": endpoint, "status": status})
        rows.append((endpoint, *_status_cells(status), None))

    def simple() -> None:
        for row in rows:
            out.line(", ".join(cell(c) for c in row))

    out.show(documents, _STATUS_HEADERS, rows, simple)
    return None if all("error" not in d for d in documents) else EXIT_FAILED


def _status_cells(status: dict[str, Any]) -> tuple[object, ...]:
    me = status.get("id")
    learner = any(m.get("id") == me and not m.get("voter", True) for m in status.get("members", []))
    return (
        me,
        status.get("version"),
        status.get("keys"),
        status.get("revision"),
        status.get("leader") == me,
        learner,
        status.get("term"),
        status.get("commit_index"),
        status.get("applied_index"),
    )


def _status(ctx: Context) -> None:
    out = ctx.out
    status = ctx.client.status()
    rows = [
        (name.upper().replace("_", " "), len(v) if name == "members" else v)
        for name, v in sorted(status.items())
    ]
    out.show(
        status,
        ("FIELD", "VALUE"),
        rows,
        lambda: out.write(json.dumps(status, indent=2, sort_keys=True).encode() + b"\n"),
    )
