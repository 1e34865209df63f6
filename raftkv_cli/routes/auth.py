"""``/v1/auth``: tokens, users, roles, and auth itself (Quart). Changes go through the log
(``raftkv.kv.AuthAdmin``); each answers the auth revision after it and the store's revision
when it applied. Every route but the token and status ones needs root once auth is
enabled (the ``Guard`` checks it, the state machine again as it applies).

    POST   /v1/auth/token                    {"user", "password"}   -> {"token", "ttl"}
    GET    /v1/auth/status                                          -> {"enabled", "auth_revision"}
    POST   /v1/auth/enable, /v1/auth/disable                        -> {"enabled", ...}
    GET    /v1/auth/users                                           -> {"users": [name, ...]}
    POST   /v1/auth/users                    {"name", "password"?}  -> 201
    GET    /v1/auth/users/<name>                                    -> {"name", "roles"}
    DELETE /v1/auth/users/<name>
    PUT    /v1/auth/users/<name>/password    {"password"}
    PUT    /v1/auth/users/<name>/roles/<role>                       (grant the role)
    DELETE /v1/auth/users/<name>/roles/<role>                       (revoke it)
    GET    /v1/auth/roles                                           -> {"roles": [name, ...]}
    POST   /v1/auth/roles                    {"name"}               -> 201
    GET    /v1/auth/roles/<name>                                    -> {"name", "permissions"}
    DELETE /v1/auth/roles/<name>
    POST   /v1/auth/roles/<name>/grant       {"perm", "key", "prefix"?}
    POST   /v1/auth/roles/<name>/revoke      {"key", "prefix"?}

Every change answers ``{"auth_revision", "revision"}``.
``perm`` is ``read``, ``write`` or ``readwrite``; ``key`` (or ``key_b64``) a key, or with
``"prefix": true`` every key under it (``""``: all keys).
"""

from __future__ import annotations

import logging
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio

from raftkv.kv import (
    AuthChanged,
    AuthDisable,
    KeyRange,
    KVService,
    Perm,
    Permission,
    RoleAdd,
    RoleDelete,
    RoleGrant,
    RoleRevoke,
    UserDelete,
    UserGrant,
    UserRevoke,
    WireFormatError,
    bytes_field,
    bytes_from_json,
    check_name,
    issue_token,
)

from .._http import HTTPError, json_reply, unauthenticated
from .._quart import as_response, json_object
from .._ratelimit import LoginLimiter

__all__ = ["register_auth"]

log = logging.getLogger("raftkv.auth")

_PERMS = {"read": Perm.READ, "write": Perm.WRITE, "readwrite": Perm.READWRITE}


def _json(value: object, status: int = 200) -> Response:
    return as_response(json_reply(value, status))


def _changed(changed: AuthChanged, status: int = 200, **more: object) -> Response:
    """What every auth change answers: the auth revision after it, and the store's revision
    when it applied (the writes at or below it were judged by the rules before it)."""
    body = {**more, "auth_revision": changed.auth_revision, "revision": changed.revision}
    return _json(body, status)


def _string(body: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = body.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise HTTPError(400, "bad body", f"{name!r} must be a non-empty string")
    return value


def _range(body: dict[str, Any]) -> KeyRange:
    prefix = body.get("prefix", False)
    try:
        key = bytes_from_json(body, "key")
    except WireFormatError as exc:
        raise HTTPError(400, "bad body", str(exc)) from None
    if not isinstance(prefix, bool) or (not key and not prefix):
        raise HTTPError(400, "bad body", "a permission names a key, or a prefix with prefix true")
    return KeyRange(key, prefix)


def _checked_name(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except ValueError as exc:
        raise HTTPError(400, f"invalid {what} name", str(exc)) from None


def register_auth(app: QuartTrio, service: KVService, limiter: LoginLimiter) -> None:
    admin = service.auth

    @app.route("/v1/auth/token", methods=["POST"])
    async def auth_token() -> Response:
        body = await json_object('{"user": "...", "password": "..."}')
        user, password = _string(body, "user"), _string(body, "password")
        assert user is not None and password is not None
        source = (request.scope.get("client") or ("?",))[0]
        wait = limiter.retry_after(user, source)
        if wait:
            detail = "too many failed logins for this user from this address"
            raise HTTPError(429, "too many attempts", detail, {"Retry-After": str(wait)})
        claims = await admin.login(user, password)
        if claims is None:
            limiter.failed(user, source)
            log.info("failed login for user %r from %s", user, source)  # never the password
            raise unauthenticated("wrong user name or password, or auth is not enabled")
        return _json({"token": issue_token(admin.state.secret, claims), "ttl": admin.token_ttl})

    @app.route("/v1/auth/status", methods=["GET"])
    async def auth_status() -> Response:
        return _json({"enabled": admin.state.enabled, "auth_revision": admin.state.revision})

    @app.route("/v1/auth/enable", methods=["POST"])
    async def auth_enable() -> Response:
        return _changed(await admin.enable(), enabled=True)

    @app.route("/v1/auth/disable", methods=["POST"])
    async def auth_disable() -> Response:
        return _changed(await admin.change(AuthDisable()), enabled=False)

    _register_users(app, service)
    _register_roles(app, service)


def _register_users(app: QuartTrio, service: KVService) -> None:
    admin = service.auth

    @app.route("/v1/auth/users", methods=["GET"])
    async def auth_users() -> Response:
        return _json({"users": sorted(admin.state.users)})

    @app.route("/v1/auth/users", methods=["POST"])
    async def auth_user_add() -> Response:
        body = await json_object('{"name": "...", "password": "..."}')
        name = _checked_name(_string(body, "name") or "", "user")
        revision = await admin.add_user(name, _string(body, "password", optional=True))
        return _changed(revision, 201)

    @app.route("/v1/auth/users/<name>", methods=["GET"])
    async def auth_user_get(name: str) -> Response:
        user = admin.state.users.get(name)
        if user is None:
            raise HTTPError(404, "not found", f"no user named {name!r}")
        return _json({"name": user.name, "roles": list(user.roles)})

    @app.route("/v1/auth/users/<name>", methods=["DELETE"])
    async def auth_user_delete(name: str) -> Response:
        return _changed(await admin.change(UserDelete(_checked_name(name, "user"))))

    @app.route("/v1/auth/users/<name>/password", methods=["PUT"])
    async def auth_user_passwd(name: str) -> Response:
        body = await json_object('{"password": "..."}')
        password = _string(body, "password")
        revision = await admin.set_password(_checked_name(name, "user"), password)
        return _changed(revision)

    @app.route("/v1/auth/users/<name>/roles/<role>", methods=["PUT", "DELETE"])
    async def auth_user_role(name: str, role: str) -> Response:
        name, role = _checked_name(name, "user"), _checked_name(role, "role")
        change = UserGrant(name, role) if request.method == "PUT" else UserRevoke(name, role)
        return _changed(await admin.change(change))


def _register_roles(app: QuartTrio, service: KVService) -> None:
    admin = service.auth

    @app.route("/v1/auth/roles", methods=["GET"])
    async def auth_roles() -> Response:
        return _json({"roles": sorted(admin.state.roles)})

    @app.route("/v1/auth/roles", methods=["POST"])
    async def auth_role_add() -> Response:
        body = await json_object('{"name": "..."}')
        name = _checked_name(_string(body, "name") or "", "role")
        return _changed(await admin.change(RoleAdd(name)), 201)

    @app.route("/v1/auth/roles/<name>", methods=["GET"])
    async def auth_role_get(name: str) -> Response:
        role = admin.state.roles.get(name)
        if role is None:
            raise HTTPError(404, "not found", f"no role named {name!r}")
        perms = [_permission_json(p) for p in role.permissions]
        return _json({"name": role.name, "permissions": perms})

    @app.route("/v1/auth/roles/<name>", methods=["DELETE"])
    async def auth_role_delete(name: str) -> Response:
        return _changed(await admin.change(RoleDelete(_checked_name(name, "role"))))

    @app.route("/v1/auth/roles/<name>/grant", methods=["POST"])
    async def auth_role_grant(name: str) -> Response:
        body = await json_object('{"perm": "read|write|readwrite", "key": "...", "prefix": true}')
        perm = _PERMS.get(str(body.get("perm")))
        if perm is None:
            raise HTTPError(400, "bad body", "perm is read, write or readwrite")
        change = RoleGrant(_checked_name(name, "role"), Permission(perm, _range(body)))
        return _changed(await admin.change(change))

    @app.route("/v1/auth/roles/<name>/revoke", methods=["POST"])
    async def auth_role_revoke(name: str) -> Response:
        body = await json_object('{"key": "...", "prefix": true}')
        change = RoleRevoke(_checked_name(name, "role"), _range(body))
        return _changed(await admin.change(change))


def _permission_json(p: Permission) -> dict[str, object]:
    return {
        "perm": p.perm.name.lower(),
        **bytes_field("key", p.range.key),
        "prefix": p.range.prefix,
    }
