"""The seed's routes, as raftexample's README uses them: ``PUT/GET /<key>`` for keys and
``POST/DELETE /<id>`` for members. Aliases onto the ``/v1`` routes' code, with the seed's
answers (``204`` on a write, the member list on a membership change).
"""

from __future__ import annotations

from quart import Response, request
from quart_trio import QuartTrio

from raftkv.kv import encode_etag

from .._http import HTTPError, Reply
from .._request import Receive, Scope, parse_member_id
from .kv import KVRoutes
from .members import Members

__all__ = ["SeedKeys", "register_seed_members"]


class SeedKeys:
    """``GET/HEAD/PUT /<key>`` on the raw path."""

    def __init__(self, kv: KVRoutes) -> None:
        self.kv = kv

    async def get(self, scope: Scope) -> Reply:
        return await self.kv.get(scope, "/")

    async def put(self, scope: Scope, receive: Receive) -> Reply:
        result = await self.kv.write(scope, receive, "/")
        return Reply(204, b"", {"etag": encode_etag(result.revision)})


def register_seed_members(app: QuartTrio, members: Members) -> None:
    """``POST /<id>`` (body: the peer URL) adds a learner; ``DELETE /<id>`` removes a member."""

    @app.route("/<target>", methods=["POST", "DELETE"])
    async def seed_member(target: str) -> Response:
        if not target.isdigit():
            raise HTTPError(404, "not found", request.path)
        node_id = parse_member_id(target)
        if request.method == "POST":
            body = await request.get_data(as_text=False)
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            return await members.add(node_id, text.strip(), learner=True)
        return await members.remove(node_id)
