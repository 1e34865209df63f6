"""The HTTP API (see docs/api.md): a Quart-Trio app behind the raw fast path for seed key routes.

Seed routes stay at the root (``/<key>`` PUT/GET, ``/<id>`` POST/DELETE for members);
everything else lives under ``/v1/`` and ``/-/`` so that any other path can be a key.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx
import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

import raftkv
from raftkv._kv import CompareFailed, check_value_size
from raftkv.client._wire import key_value_to_json

from ._fastpath import ASGIApp, FastPath, is_key_path, raw_key
from ._http import HTTPError, error_for_exception, json_body
from ._metrics import PeerStats, render_metrics
from ._service import KVService
from ._settings import SettingsError, parse_peer_url

__all__ = ["create_app"]

log = logging.getLogger("raftkv.http")

FORWARDED_HEADER = "X-Raftkv-Forwarded"
KV_PREFIX = "/v1/kv/"
_KEY_METHODS = "GET, HEAD, PUT"
_MEMBER_METHODS = "GET, HEAD, PUT, POST, DELETE"


def _json(value: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json_body(value), status, headers, content_type="application/json")


def _parse_member_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1 or len(text) > 18:
        raise HTTPError(400, "invalid member id", f"{text!r} is not a node id (an integer >= 1)")
    return int(text)


def _parse_revision(header: str, name: str) -> int:
    text = header.strip()
    if text.startswith("W/"):
        raise HTTPError(400, f"bad {name}", "weak ETags do not name a revision")
    text = text.strip('"')
    if not text.isdigit():
        raise HTTPError(
            400, f"bad {name}", f"expected a revision ETag like '\"42\"', got {header!r}"
        )
    return int(text)


async def _body() -> bytes:
    data = await request.get_data(as_text=False)
    return data if isinstance(data, bytes) else data.encode()


def _raw_query_arg(name: str) -> bytes | None:
    """A query argument as the raw bytes the client percent-encoded (keys may be any bytes)."""
    for pair in bytes(request.scope.get("query_string", b"")).split(b"&"):
        k, _, v = pair.partition(b"=")
        if unquote_to_bytes(k.replace(b"+", b" ")) == name.encode():
            return unquote_to_bytes(v.replace(b"+", b" "))
    return None


def create_app(
    service: KVService,
    *,
    forward_client: httpx.AsyncClient | None = None,
    peer_stats: PeerStats | None = None,
) -> ASGIApp:
    """The daemon's ASGI app: the fast path in front of the Quart routes."""
    node = service.node
    app = QuartTrio("raftkv")
    app.config["MAX_CONTENT_LENGTH"] = service.limits.max_value_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    # -- plumbing ---------------------------------------------------------------------------------

    @app.after_request
    async def _raft_headers(response: Response) -> Response:
        index, term = node.raft_position()
        response.headers["X-Raft-Index"] = str(index)
        response.headers["X-Raft-Term"] = str(term)
        return response

    @app.errorhandler(HTTPException)
    async def _http_exception(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        valid = set(getattr(exc, "valid_methods", None) or ())
        if status == 405 and not is_key_path(request.path) and valid <= {"POST", "DELETE"}:
            # Only the seed's catch-all member route matched: no such reserved route exists.
            return _json({"error": "not found", "detail": request.path}, 404)
        if status == 405:
            allow = _MEMBER_METHODS if request.path[1:].isdigit() else _KEY_METHODS
            if not is_key_path(request.path):
                allow = ", ".join(sorted(valid))
            headers["Allow"] = allow
        if status == 413:
            detail = f"the body is over the limit of {service.limits.max_value_bytes} bytes"
        else:
            detail = exc.description or ""
        return _json({"error": (exc.name or "error").lower(), "detail": detail}, status, headers)

    @app.errorhandler(Exception)
    async def _exception(exc: Exception) -> Response:
        error = error_for_exception(exc)
        if error is None:
            log.exception("internal error on %s %s", request.method, request.path)
            error = HTTPError(500, "internal error", "see the server log")
        return _json({"error": error.error, "detail": error.detail}, error.status, error.headers)

    async def forward_to_leader(exc: raftkv.NotLeader) -> Response:
        """Replay this request on the leader (membership and transfer run there only)."""
        # The header lists the nodes the request went through: at most one hop more than the
        # first (a leader that just handed leadership over passes its own removal on), no loops.
        hops = [h for h in request.headers.get(FORWARDED_HEADER, "").split(",") if h]
        if forward_client is None or len(hops) >= 2 or str(node.id) in hops:
            raise exc

        def leader_known(s: raftkv.NodeStatus) -> bool:
            return any(m.id == s.leader and m.client_url for m in s.members)

        # Right after an election the leader may not have published its client URL yet.
        with trio.move_on_after(node.config.request_timeout / 2):
            await node.wait_status(leader_known)
        status = node.status()
        leader = next((m for m in status.members if m.id == status.leader), None)
        if leader is None or not leader.client_url:
            raise exc
        body = await _body()
        try:
            reply = await forward_client.request(
                request.method,
                leader.client_url + request.full_path.rstrip("?"),
                content=body,
                headers={
                    FORWARDED_HEADER: ",".join([*hops, str(node.id)]),
                    "content-type": request.headers.get("content-type", ""),
                },
            )
        except httpx.TimeoutException:
            raise raftkv.OutcomeUnknown("the leader did not answer in time") from None
        except httpx.HTTPError as err:
            raise HTTPError(503, "leader unreachable", str(err), {"Retry-After": "1"}) from None
        headers = {k: v for k, v in reply.headers.items() if k.lower() in ("content-type", "allow")}
        return Response(reply.content, reply.status_code, headers)

    def members_json() -> dict[str, Any]:
        status = node.status()
        out = []
        for m in status.members:
            out.append(
                {
                    "id": m.id,
                    "peer_url": m.peer_url,
                    "client_url": m.client_url,
                    "voter": m.voter,
                    "learner": not m.voter,
                    "leader": m.id == status.leader,
                }
            )
        return {"members": out, "leader": status.leader}

    async def add_member(node_id: int, peer_url: str, learner: bool) -> Response:
        try:
            url = parse_peer_url(peer_url)
        except SettingsError as exc:
            raise HTTPError(400, "invalid peer url", str(exc)) from None
        if any(m.id == node_id for m in node.status().members):
            raise HTTPError(409, "member exists", f"node {node_id} is already a member")
        try:
            await node.add_member(node_id, url, learner=learner)
        except raftkv.NotLeader as exc:
            return await forward_to_leader(exc)
        return _json(members_json(), 200)

    async def remove_member(node_id: int) -> Response:
        status = node.status()
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
            return await forward_to_leader(exc)
        return _json(members_json(), 200)

    # -- seed routes ------------------------------------------------------------------------------

    @app.route("/<path:target>", methods=["POST", "DELETE"])
    async def seed_member(target: str) -> Response:
        if not target.isdigit():
            raise HTTPError(
                405,
                "method not allowed",
                "POST and DELETE take a member id; keys take GET and PUT",
                {"Allow": _KEY_METHODS},
            )
        node_id = _parse_member_id(target)
        if request.method == "POST":
            body = await _body()
            return await add_member(node_id, body.decode("utf-8", "replace").strip(), True)
        return await remove_member(node_id)

    # -- /v1/kv -----------------------------------------------------------------------------------

    @app.route("/v1/kv/<path:key>", methods=["GET", "HEAD"])
    async def kv_get(key: str) -> Response:
        linearizable = request.args.get("consistency", "linearizable") != "serializable"
        kv = await service.get(raw_key(request.scope, KV_PREFIX), linearizable=linearizable)
        if kv is None:
            raise HTTPError(404, "key not found", key)
        return Response(
            kv.value,
            200,
            {"ETag": f'"{kv.mod_revision}"', "X-Create-Revision": str(kv.create_revision)},
            content_type="application/octet-stream",
        )

    @app.route("/v1/kv/<path:key>", methods=["PUT"])
    async def kv_put(key: str) -> Response:
        if request.content_length is not None:
            check_value_size(request.content_length, service.limits.max_value_bytes)
        if_revision = _condition()
        value = await _body()
        result = await service.put(
            raw_key(request.scope, KV_PREFIX), value, if_revision=if_revision
        )
        if isinstance(result, CompareFailed):
            raise HTTPError(
                412,
                "precondition failed",
                f"the key's revision is {result.mod_revision}, not {result.expected}",
                {"ETag": f'"{result.mod_revision}"'},
            )
        status = 201 if result.prev is None else 200
        return _json({"revision": result.revision}, status, {"ETag": f'"{result.revision}"'})

    @app.route("/v1/kv/<path:key>", methods=["DELETE"])
    async def kv_delete(key: str) -> Response:
        result = await service.delete(raw_key(request.scope, KV_PREFIX), if_revision=_condition())
        if isinstance(result, CompareFailed):
            raise HTTPError(
                412,
                "precondition failed",
                f"the key's revision is {result.mod_revision}, not {result.expected}",
            )
        if not result.deleted:
            raise HTTPError(404, "key not found", key)
        return _json({"revision": result.revision, "deleted": 1})

    def _condition() -> int | None:
        if_match = request.headers.get("If-Match")
        if_none_match = request.headers.get("If-None-Match")
        if if_match is not None and if_none_match is not None:
            raise HTTPError(400, "conflicting conditions", "use If-Match or If-None-Match")
        if if_none_match is not None:
            if if_none_match.strip() != "*":
                raise HTTPError(400, "bad If-None-Match", "only 'If-None-Match: *' is supported")
            return 0
        if if_match is not None:
            revision = _parse_revision(if_match, "If-Match")
            if revision < 1:
                raise HTTPError(400, "bad If-Match", "revisions start at 1")
            return revision
        return None

    @app.route("/v1/kv", methods=["GET"])
    async def kv_list() -> Response:
        prefix = _raw_query_arg("prefix") or b""
        after = _raw_query_arg("after")
        limit_text = request.args.get("limit", str(min(1000, service.limits.max_list_limit)))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= service.limits.max_list_limit:
            raise HTTPError(400, "bad limit", f"limit is 1..{service.limits.max_list_limit}")
        linearizable = request.args.get("consistency", "linearizable") != "serializable"
        result = await service.range(
            prefix,
            after=after,
            limit=int(limit_text),
            linearizable=linearizable,
        )
        return _json(
            {
                "kvs": [key_value_to_json(kv) for kv in result.kvs],
                "more": result.more,
                "revision": result.revision,
            }
        )

    # -- /v1/members, /v1/leader ------------------------------------------------------------------

    @app.route("/v1/members", methods=["GET"])
    async def members_list() -> Response:
        return _json(members_json())

    @app.route("/v1/members", methods=["POST"])
    async def members_add() -> Response:
        body = await request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            raise HTTPError(400, "bad body", 'expected {"id": 4, "peer_url": "http://host:port"}')
        node_id = body.get("id")
        peer_url = body.get("peer_url")
        learner = body.get("learner", True)
        if type(node_id) is not int or node_id < 1:
            raise HTTPError(400, "invalid member id", "id must be an integer >= 1")
        if not isinstance(peer_url, str) or not isinstance(learner, bool):
            raise HTTPError(400, "bad body", "peer_url must be a string, learner a boolean")
        return await add_member(node_id, peer_url, learner)

    @app.route("/v1/members/<target>", methods=["DELETE"])
    async def members_remove(target: str) -> Response:
        return await remove_member(_parse_member_id(target))

    @app.route("/v1/leader", methods=["GET"])
    async def leader_get() -> Response:
        return _json({"leader": node.status().leader})

    @app.route("/v1/leader", methods=["POST"])
    async def leader_transfer() -> Response:
        body = await request.get_json(force=True, silent=True)
        to = body.get("id") if isinstance(body, dict) else None
        if type(to) is not int or to < 1:
            raise HTTPError(400, "bad body", 'expected {"id": <member id>}')
        if not any(m.id == to and m.voter for m in node.status().members):
            raise HTTPError(404, "no such voter", f"node {to} is not a voting member")
        try:
            await node.transfer_leadership(to)
        except raftkv.NotLeader as exc:
            return await forward_to_leader(exc)
        return _json({"leader": to})

    # -- operations -------------------------------------------------------------------------------

    @app.route("/-/health", methods=["GET"])
    async def health() -> Response:
        s = node.status()
        if s.removed:
            return _json({"health": "removed"}, 503)
        if s.leader is None:
            return _json({"health": "no leader"}, 503, {"Retry-After": "1"})
        if s.applied < s.commit:
            return _json({"health": "applying", "behind": s.commit - s.applied}, 503)
        return _json({"health": "ok"})

    @app.route("/-/ready", methods=["GET"])
    async def ready() -> Response:
        s = node.status()
        member = any(m.id == s.id for m in s.members)
        if s.removed or not member or s.leader is None:
            return _json({"ready": False}, 503, {"Retry-After": "1"})
        return _json({"ready": True})

    @app.route("/-/status", methods=["GET"])
    async def status() -> Response:
        s = node.status()
        return _json(
            {
                "id": s.id,
                "role": s.role.value,
                "term": s.term,
                "leader": s.leader,
                "commit_index": s.commit,
                "applied_index": s.applied,
                "last_index": s.last_index,
                "removed": s.removed,
                "revision": service.kv.revision,
                "keys": len(service.kv),
                **members_json(),
            }
        )

    @app.route("/-/metrics", methods=["GET"])
    async def metrics() -> Response:
        body, content_type = render_metrics(node, peer_stats)
        return Response(body, 200, content_type=content_type)

    return FastPath(service, app)  # type: ignore[arg-type]  # Quart types its ASGI args
