"""``Guard``: the one place on the request path that decides who a request comes from and
whether it may do what it asks, before any route runs (so no answer tells whether a key exists).

Who: with auth disabled (this node's applied state), the verified client certificate's common
name if there is one, else anonymous: nothing is checked here, but the identity rides in every
proposed command, and the state machine refuses it at apply if auth was enabled meanwhile. With
auth enabled: a bearer token (``Authorization: Bearer``), else the client certificate's common
name (with ``--client-ca``), else anonymous; a bad token, or a certificate naming no user, is 401.

What: ``_needs`` maps every route to what it needs (``raftkv.kv.Needs``), reading the same parsed
request the route will read (``_request`` parses once); the commands' own needs come from
``raftkv.kv.needs_of``, the function the state machine applies with. Open to anyone:
``/-/health``, ``/-/ready``, ``POST /v1/auth/token`` and ``GET /v1/auth/status``.
"""

from __future__ import annotations

from raftkv.kv import (
    KeyRange,
    KVService,
    LeaseRevokeCommand,
    Needs,
    Verdict,
    needs_of,
)

from ._http import forbidden, unauthenticated
from ._protocol import client_cert_name
from ._request import Query, Receive, Scope, header, key_at, parse_lease_id, txn_request
from ._request import watch_request as parse_watch

__all__ = ["OPEN", "Guard"]

OPEN = frozenset({"/-/health", "/-/ready", "/v1/auth/token", "/v1/auth/status"})
_ANY_USER = Needs()
_ROOT = Needs(root=True)
_KV = "/v1/kv/"


class Guard:
    def __init__(self, service: KVService) -> None:
        self.service = service
        self.auth = service.auth
        self.limits = service.limits

    async def admit(self, scope: Scope, receive: Receive) -> str | None:
        """The user the request acts for (None: anonymous); 401 or 403 if it may not."""
        state = self.auth.state
        if not state.enabled:
            return client_cert_name(scope)
        if scope["path"] in OPEN:
            return None
        user = self._identify(scope)
        verdict = state.verdict(user, await self._needs(scope, receive))
        if verdict is Verdict.UNAUTHENTICATED:
            raise unauthenticated("authentication required: a token or a client certificate")
        if verdict is Verdict.DENIED:
            raise forbidden()
        return user

    def _identify(self, scope: Scope) -> str | None:
        authorization = header(scope, b"authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthenticated("use 'Authorization: Bearer <token>'", bad_token=True)
            user = self.auth.user_of_token(token.strip())
            if user is None:
                raise unauthenticated("the token is invalid or expired", bad_token=True)
            return user
        name = client_cert_name(scope)
        if name is not None and name not in self.auth.state.users:
            raise unauthenticated("the client certificate names no user")
        return name

    async def _needs(self, scope: Scope, receive: Receive) -> Needs:
        path, method = scope["path"], scope["method"]
        reading = method in ("GET", "HEAD")
        if path == "/":
            return _ANY_USER  # names no key: refused by the route
        if not path.startswith(("/v1/", "/-/")) and path not in ("/v1", "/-"):
            if path[1:].isdigit() and method in ("POST", "DELETE"):
                return _ROOT  # the seed's membership routes
            key = KeyRange(key_at(scope, "/", self.limits))
            return Needs(read=(key,)) if reading else Needs(write=(key,))
        if path.startswith(_KV):
            key = KeyRange(key_at(scope, _KV, self.limits))
            return Needs(read=(key,)) if reading else Needs(write=(key,))
        if path == "/v1/kv":
            prefix = KeyRange(Query.parsed(scope).bytes("prefix") or b"", prefix=True)
            return Needs(read=(prefix,)) if reading else Needs(write=(prefix,))
        if path == "/v1/txn" and method == "POST":
            txn = await txn_request(scope, receive, self.limits)
            return needs_of(txn, self.service.store.lease_keys)
        if path == "/v1/watch":
            watch = parse_watch(scope, self.limits)
            if watch.key is not None:
                return Needs(read=(KeyRange(watch.key),))
            return Needs(read=(KeyRange(watch.prefix or b"", prefix=True),))
        if path.startswith("/v1/leases/") and method == "DELETE":
            lease = parse_lease_id(path.removeprefix("/v1/leases/"))
            return needs_of(LeaseRevokeCommand(lease), self.service.store.lease_keys)
        if path.startswith("/v1/leases") or (
            reading and path.startswith(("/v1/members", "/v1/leader"))
        ):
            return _ANY_USER
        if path.startswith(("/v1/", "/-/")) and not _unknown(path):
            return _ROOT  # compaction, snapshots, membership, leadership, auth, status, metrics
        return _ANY_USER  # a 404 to come: nothing to protect


_KNOWN = ("/v1/compact", "/v1/snapshot", "/v1/members", "/v1/leader", "/v1/auth", "/-/")


def _unknown(path: str) -> bool:
    return not path.startswith(_KNOWN)
