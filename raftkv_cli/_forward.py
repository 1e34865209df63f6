"""Replaying a request on the leader, for what only the leader can do (membership changes,
leadership transfer). Writes need none of this: Raft forwards proposals itself.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import trio
from quart import Response, request

import raftkv
from raftkv.kv import AuthAdmin, requester

from ._http import HTTPError

__all__ = ["FORWARDED_HEADER", "LeaderForwarder", "OnFirstUse"]

FORWARDED_HEADER = "X-Raftkv-Forwarded"
_PASSED_BACK = ("content-type", "allow", "etag", "retry-after")


class LeaderForwarder:
    def __init__(
        self, node: raftkv.Node, client: httpx.AsyncClient | None, auth: AuthAdmin | None = None
    ) -> None:
        self.node = node
        self.client = client
        self.auth = auth

    async def forward(self, exc: raftkv.NotLeader) -> Response:
        """Replay the current Quart request on the leader; re-raise ``exc`` if we cannot."""
        # The header lists the nodes the request went through: at most one hop more than the
        # first (a leader that just handed leadership over passes its own removal on), no loops.
        hops = [h for h in request.headers.get(FORWARDED_HEADER, "").split(",") if h]
        node = self.node
        if self.client is None or len(hops) >= 2 or str(node.id) in hops:
            raise exc
        leader_url = await self._leader_url()
        if leader_url is None:
            raise exc
        body = await request.get_data(as_text=False)
        headers = {
            FORWARDED_HEADER: ",".join([*hops, str(node.id)]),
            "content-type": request.headers.get("content-type", ""),
            **self._credentials(),
        }
        try:
            reply = await self.client.request(
                request.method,
                leader_url + request.full_path.rstrip("?"),
                content=body,
                headers=headers,
            )
        except httpx.TimeoutException:
            raise raftkv.OutcomeUnknown("the leader did not answer in time") from None
        except httpx.HTTPError as err:
            raise HTTPError(503, "leader unreachable", str(err), {"Retry-After": "1"}) from None
        headers = {k: v for k, v in reply.headers.items() if k.lower() in _PASSED_BACK}
        return Response(reply.content, reply.status_code, headers)

    def _credentials(self) -> dict[str, str]:
        """Who the request is for, as the leader checks it: a fresh short-lived token for the
        user (every member can sign one with the replicated secret), whether the user came with
        a token or a client certificate (this node's own certificate is what the leader sees)."""
        _, user = requester()
        token = None if self.auth is None or user is None else self.auth.token_for(user)
        return {} if token is None else {"authorization": f"Bearer {token}"}

    async def _leader_url(self) -> str | None:
        def leader_known(s: raftkv.NodeStatus) -> bool:
            return any(m.id == s.leader and m.client_url for m in s.members)

        # Right after an election the leader may not have published its client URL yet.
        with trio.move_on_after(self.node.config.request_timeout / 2):
            await self.node.wait_status(leader_known)
        status = self.node.status()
        leader = next((m for m in status.members if m.id == status.leader), None)
        return leader.client_url if leader is not None and leader.client_url else None


class OnFirstUse(httpx.AsyncBaseTransport):
    """A transport made by ``make`` when the first request goes through it. The forwarder may
    never forward (membership changes and leadership transfers are rare), and an HTTPS
    transport trusting the system's CAs costs every start-up ~0.1 s to build."""

    def __init__(self, make: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._make = make
        self._transport: httpx.AsyncBaseTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            self._transport = self._make()
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
