"""``/v1/members`` and ``/v1/leader``: membership changes and leadership transfer (Quart).

All changes run on the leader only: a follower that gets one replays it there (``LeaderForwarder``).
A change answers once it is applied here, with the member list.
"""

from __future__ import annotations

from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

import raftkv
from raftkv.transport import normalize_peer_url

from .._forward import LeaderForwarder
from .._http import HTTPError, json_reply
from .._quart import as_response
from .._request import parse_member_id

__all__ = ["Members", "members_json", "register_members"]


def members_json(status: raftkv.NodeStatus) -> dict[str, Any]:
    members = [
        {
            "id": m.id,
            "peer_url": m.peer_url,
            "client_url": m.client_url,
            "voter": m.voter,
            "learner": not m.voter,
            "leader": m.id == status.leader,
        }
        for m in status.members
    ]
    return {"members": members, "leader": status.leader}


class Members:
    """What the membership routes do, whichever route they came by."""

    def __init__(self, node: raftkv.Node, forwarder: LeaderForwarder) -> None:
        self.node = node
        self.forwarder = forwarder

    def list(self) -> Response:
        return as_response(json_reply(members_json(self.node.status())))

    async def add(self, node_id: int, peer_url: str, *, learner: bool) -> Response:
        try:
            url = normalize_peer_url(peer_url)
        except ValueError as exc:
            raise HTTPError(400, "invalid peer url", str(exc)) from None
        status = self.node.status()
        if status.leader != self.node.id:
            # Only the leader's configuration is known to be current: it answers.
            return await self.forwarder.forward(raftkv.NotLeader(status.leader, "membership"))
        if any(m.id == node_id for m in status.members):
            raise HTTPError(409, "member exists", f"node {node_id} is already a member")
        try:
            await self.node.add_member(node_id, url, learner=learner)
        except raftkv.NotLeader as exc:
            return await self.forwarder.forward(exc)
        return self.list()

    async def remove(self, node_id: int) -> Response:
        node = self.node
        status = node.status()
        if status.leader != node.id:
            # A joiner that has not heard from the leader knows no member: never answer 404
            # from a configuration that may be stale; the leader answers.
            return await self.forwarder.forward(raftkv.NotLeader(status.leader, "membership"))
        if not any(m.id == node_id for m in status.members):
            raise HTTPError(404, "no such member", f"node {node_id} is not a member")
        if node_id == node.id == status.leader:
            # Removing the leader: hand leadership to the most caught-up voter first, then let
            # the new leader remove us like any follower.
            others = [m for m in status.members if m.voter and m.id != node.id]
            if others:
                best = max(others, key=lambda m: (m.match or 0, -m.id))
                await node.transfer_leadership(best.id)
        try:
            await node.remove_member(node_id)
        except raftkv.NotLeader as exc:
            return await self.forwarder.forward(exc)
        return self.list()

    async def promote(self, node_id: int) -> Response:
        status = self.node.status()
        if status.leader != self.node.id:
            # Only the leader knows how far a learner has caught up.
            return await self.forwarder.forward(raftkv.NotLeader(status.leader, "membership"))
        if not any(m.id == node_id for m in status.members):
            raise HTTPError(404, "no such member", f"node {node_id} is not a member")
        try:
            await self.node.promote_member(node_id)
        except raftkv.NotLeader as exc:
            return await self.forwarder.forward(exc)
        return self.list()

    async def transfer(self, to: int) -> Response:
        if not any(m.id == to and m.voter for m in self.node.status().members):
            raise HTTPError(404, "no such voter", f"node {to} is not a voting member")
        try:
            await self.node.transfer_leadership(to)
        except raftkv.NotLeader as exc:
            return await self.forwarder.forward(exc)
        return as_response(json_reply({"leader": to}))


async def _json_object(example: str) -> dict[str, Any]:
    body = await request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise HTTPError(400, "bad body", f"expected {example}")
    return body


def register_members(app: QuartTrio, members: Members) -> None:
    @app.route("/v1/members", methods=["GET"])
    async def members_list() -> Response:
        return members.list()

    @app.route("/v1/members", methods=["POST"])
    async def members_add() -> Response:
        body = await _json_object('{"id": 4, "peer_url": "http://host:port"}')
        node_id, peer_url = body.get("id"), body.get("peer_url")
        learner = body.get("learner", True)
        if type(node_id) is not int or node_id < 1:
            raise HTTPError(400, "invalid member id", "id must be an integer >= 1")
        if not isinstance(peer_url, str) or not isinstance(learner, bool):
            raise HTTPError(400, "bad body", "peer_url must be a string, learner a boolean")
        return await members.add(node_id, peer_url, learner=learner)

    @app.route("/v1/members/<target>", methods=["DELETE"])
    async def members_remove(target: str) -> Response:
        return await members.remove(parse_member_id(target))

    @app.route("/v1/members/<target>/promote", methods=["POST"])
    async def members_promote(target: str) -> Response:
        return await members.promote(parse_member_id(target))

    @app.route("/v1/leader", methods=["GET"])
    async def leader_get() -> Response:
        return as_response(json_reply({"leader": members.node.status().leader}))

    @app.route("/v1/leader", methods=["POST"])
    async def leader_transfer() -> Response:
        to = (await _json_object('{"id": <member id>}')).get("id")
        if type(to) is not int or to < 1:
            raise HTTPError(400, "bad body", 'expected {"id": <member id>}')
        return await members.transfer(to)
