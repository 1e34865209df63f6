"""Users, roles and auth (docs/security.md): user ..., role ..., auth enable|disable|status.

    raftkv user add NAME[:PASSWORD] [--password-stdin]   (no password: certificate only)
    raftkv user delete|get NAME      raftkv user list     raftkv user passwd NAME[:PASSWORD]
    raftkv user grant-role|revoke-role NAME ROLE
    raftkv role add|delete|get NAME  raftkv role list
    raftkv role grant NAME read|write|readwrite KEY [--prefix]   raftkv role revoke NAME KEY
    raftkv auth enable|disable|status

The TLS and identity options (``--cacert``, ``--cert``, ``--key``, ``--user``) are global:
``_parser`` adds them (``add_tls_options``) and ``client_options`` turns them into the
client's arguments. Changes print the auth revision after them (``-w json``: the server's
answer); lists print one name a line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from ._common import Commands, Context, add_command

__all__ = ["add_tls_options", "client_options", "register"]


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    # Their own dests: commands have positionals named "key" (get, put, ...) and "name".
    parser.add_argument(
        "--cacert", dest="tls_ca", metavar="FILE", help="CA bundle that signed the servers"
    )
    parser.add_argument(
        "--cert", dest="tls_cert", metavar="FILE", help="this client's certificate (PEM)"
    )
    parser.add_argument("--key", dest="tls_key", metavar="FILE", help="the private key of --cert")
    parser.add_argument(
        "--user",
        dest="auth_user",
        metavar="NAME[:PASSWORD]",
        help="log in as this user (the password else from $RAFTKV_PASSWORD)",
    )


def client_options(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``raftkv.Client`` keyword arguments of the global TLS and identity options."""
    options: dict[str, Any] = {}
    if args.tls_ca is not None:
        options["ca"] = args.tls_ca
    if args.tls_cert is not None or args.tls_key is not None:
        options |= {"cert": args.tls_cert, "key": args.tls_key}
    if args.auth_user:
        name, sep, password = args.auth_user.partition(":")
        password = password if sep else environ.get("RAFTKV_PASSWORD")
        if password is None:
            raise ValueError("--user NAME needs :PASSWORD or $RAFTKV_PASSWORD")
        options |= {"user": name, "password": password}
    return options


def register(commands: Commands) -> None:
    _register_users(commands)
    _register_roles(commands)
    auth = commands.add_parser("auth", help="enable, disable or show authentication")
    actions = auth.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    add_command(actions, "enable", _change(lambda c, a: c.auth_enable()), help="turn auth on")
    add_command(actions, "disable", _change(lambda c, a: c.auth_disable()), help="turn it off")
    add_command(actions, "status", _auth_status, help="whether auth is enabled")


def _register_users(commands: Commands) -> None:
    user = commands.add_parser("user", help="add, delete, list users; their passwords and roles")
    actions = user.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    for name, run, doc in (("add", _user_add, "add a user"), ("passwd", _user_passwd, "")):
        cmd = add_command(actions, name, run, help=doc or "change a user's password")
        cmd.add_argument("name", metavar="NAME[:PASSWORD]")
        cmd.add_argument("--password-stdin", action="store_true", help="read the password")
    delete = add_command(actions, "delete", _change(lambda c, a: c.user_delete(a.name)))
    delete.add_argument("name")
    get = add_command(actions, "get", _user_get, help="a user's roles")
    get.add_argument("name")
    add_command(actions, "list", _names("users", lambda c: c.user_list()), help="every user")
    for name, call in (
        ("grant-role", lambda c, a: c.user_grant_role(a.name, a.role)),
        ("revoke-role", lambda c, a: c.user_revoke_role(a.name, a.role)),
    ):
        cmd = add_command(actions, name, _change(call))
        cmd.add_argument("name")
        cmd.add_argument("role")


def _register_roles(commands: Commands) -> None:
    role = commands.add_parser("role", help="add, delete, list roles; grant and revoke")
    actions = role.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    for name, call in (
        ("add", lambda c, a: c.role_add(a.name)),
        ("delete", lambda c, a: c.role_delete(a.name)),
    ):
        add_command(actions, name, _change(call)).add_argument("name")
    add_command(actions, "get", _role_get, help="a role's permissions").add_argument("name")
    add_command(actions, "list", _names("roles", lambda c: c.role_list()), help="every role")
    grant = add_command(
        actions,
        "grant",
        _change(lambda c, a: c.role_grant(a.name, a.perm, a.range_key, prefix=a.prefix)),
        help="grant read, write or readwrite on a key or a prefix",
    )
    grant.add_argument("name")
    grant.add_argument("perm", choices=("read", "write", "readwrite"))
    revoke = add_command(
        actions,
        "revoke",
        _change(lambda c, a: c.role_revoke(a.name, a.range_key, prefix=a.prefix)),
        help="revoke the permission on exactly that key or prefix",
    )
    revoke.add_argument("name")
    for cmd in (grant, revoke):
        cmd.add_argument("range_key", metavar="KEY")
        cmd.add_argument("--prefix", action="store_true", help="every key under KEY")


Call = Callable[[Any, argparse.Namespace], dict[str, Any]]


def _change(call: Call) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        answer = call(ctx.client, ctx.args)
        rows = [[answer.get("auth_revision"), answer.get("revision")]]
        simple = lambda: ctx.out.line(str(answer.get("auth_revision", "")))  # noqa: E731
        ctx.out.show(answer, ("AUTH REVISION", "REVISION"), rows, simple)

    return run


def _password(ctx: Context) -> tuple[str, str | None]:
    name, sep, password = ctx.args.name.partition(":")
    if ctx.args.password_stdin:
        return name, ctx.stdin.readline().decode("utf-8").rstrip("\n")
    return name, password if sep else None


def _user_add(ctx: Context) -> None:
    name, password = _password(ctx)
    _change(lambda c, a: c.user_add(name, password))(ctx)


def _user_passwd(ctx: Context) -> None:
    name, password = _password(ctx)
    if password is None:
        raise ValueError("user passwd needs NAME:PASSWORD or --password-stdin")
    _change(lambda c, a: c.user_passwd(name, password))(ctx)


def _names(field: str, call: Callable[[Any], dict[str, Any]]) -> Callable[[Context], None]:
    def run(ctx: Context) -> None:
        answer = call(ctx.client)
        names = answer.get(field, [])
        ctx.out.show(answer, (field[:-1].upper(),), [[n] for n in names], _lines(ctx, names))

    return run


def _lines(ctx: Context, texts: list[str]) -> Callable[[], None]:
    def simple() -> None:
        for text in texts:
            ctx.out.line(text)

    return simple


def _user_get(ctx: Context) -> None:
    answer = ctx.client.user_get(ctx.args.name)
    roles = answer.get("roles", [])
    rows = [[answer.get("name"), r] for r in roles]
    ctx.out.show(answer, ("USER", "ROLE"), rows, _lines(ctx, roles))


def _role_get(ctx: Context) -> None:
    answer = ctx.client.role_get(ctx.args.name)
    perms = answer.get("permissions", [])
    rows = [[p.get("perm"), p.get("key", p.get("key_b64")), p.get("prefix")] for p in perms]

    def simple() -> None:
        for perm, key, prefix in rows:
            ctx.out.line(f"{perm}\t{key}{' (prefix)' if prefix else ''}")

    ctx.out.show(answer, ("PERMISSION", "KEY", "PREFIX"), rows, simple)


def _auth_status(ctx: Context) -> None:
    answer = ctx.client.auth_status()
    enabled = bool(answer.get("enabled"))
    simple = lambda: ctx.out.line("enabled" if enabled else "disabled")  # noqa: E731
    ctx.out.show(
        answer, ("ENABLED", "AUTH REVISION"), [[enabled, answer.get("auth_revision")]], simple
    )
