"""``python -m raftkv_cli._ctl_auth``: users, roles and auth from the command line, over TLS
with client certificates (``--cacert``, ``--cert``, ``--key``) and as a user (``--user
NAME[:PASSWORD]``, the password else from ``$RAFTKV_PASSWORD``). It joins the ``raftkv``
command (``raftkv user|role|auth ...``) once that is split into a package of modules.

    user add NAME[:PASSWORD] [--password-stdin]   user delete NAME   user list   user get NAME
    user passwd NAME[:PASSWORD] [--password-stdin]
    user grant-role NAME ROLE                     user revoke-role NAME ROLE
    role add NAME   role delete NAME   role list   role get NAME
    role grant NAME read|write|readwrite KEY [--prefix]     role revoke NAME KEY [--prefix]
    auth enable   auth disable   auth status

Each prints the server's JSON answer. Exit status: 0 done; 1 refused (401, 403, not found,
exists); 2 bad usage; 3 unavailable or other failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from raftkv.client import (
    BadRequest,
    Client,
    ClientError,
    Conflict,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)

__all__ = ["ClientOptions", "build_parser", "main"]

DEFAULT_ENDPOINTS = "http://127.0.0.1:12380"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3

ClientOptions = dict[str, Any]  # keyword arguments for raftkv.Client
ClientFactory = Callable[[str, ClientOptions], Client]


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raftkv", allow_abbrev=False, description=__doc__)
    parser.add_argument("--endpoints", default=environ.get("RAFTKV_ENDPOINTS", DEFAULT_ENDPOINTS))
    parser.add_argument("--cacert", metavar="FILE", help="CA bundle that signed the servers")
    parser.add_argument("--cert", metavar="FILE", help="this client's certificate (PEM)")
    parser.add_argument("--key", metavar="FILE", help="the private key of --cert")
    parser.add_argument("--user", metavar="NAME[:PASSWORD]", help="log in as this user")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    groups = parser.add_subparsers(dest="group", required=True, metavar="user|role|auth")
    user = groups.add_parser("user").add_subparsers(dest="command", required=True)
    for name in ("add", "passwd"):
        cmd = user.add_parser(name)
        cmd.add_argument("name", metavar="NAME[:PASSWORD]")
        cmd.add_argument("--password-stdin", action="store_true", help="read the password")
    for name in ("delete", "get"):
        user.add_parser(name).add_argument("name")
    user.add_parser("list")
    for name in ("grant-role", "revoke-role"):
        cmd = user.add_parser(name)
        cmd.add_argument("name")
        cmd.add_argument("role")
    role = groups.add_parser("role").add_subparsers(dest="command", required=True)
    for name in ("add", "delete", "get"):
        role.add_parser(name).add_argument("name")
    role.add_parser("list")
    grant = role.add_parser("grant")
    grant.add_argument("name")
    grant.add_argument("perm", choices=("read", "write", "readwrite"))
    revoke = role.add_parser("revoke")
    revoke.add_argument("name")
    for cmd in (grant, revoke):
        cmd.add_argument("range_key", metavar="KEY")  # not "key": --key is the TLS key file
        cmd.add_argument("--prefix", action="store_true", help="every key under KEY")
    auth = groups.add_parser("auth").add_subparsers(dest="command", required=True)
    for name in ("enable", "disable", "status"):
        auth.add_parser(name)
    return parser


def client_options(args: argparse.Namespace, environ: Mapping[str, str]) -> ClientOptions:
    options: ClientOptions = {"timeout": args.timeout, "ca": args.cacert}
    if args.cert is not None or args.key is not None:
        options |= {"cert": args.cert, "key": args.key}
    if args.user:
        name, sep, password = args.user.partition(":")
        options |= {"user": name, "password": password if sep else environ.get("RAFTKV_PASSWORD")}
        if options["password"] is None:
            raise ValueError("--user NAME needs :PASSWORD or $RAFTKV_PASSWORD")
    return options


def _name_and_password(args: argparse.Namespace, stdin: IO[str]) -> tuple[str, str | None]:
    name, sep, password = args.name.partition(":")
    if args.password_stdin:
        return name, stdin.readline().rstrip("\n")
    return name, password if sep else None


def run(args: argparse.Namespace, client: Client, stdin: IO[str]) -> dict[str, Any]:
    """The command's answer."""
    c, g, cmd = client, args.group, args.command
    if g == "user" and cmd in ("add", "passwd"):
        name, password = _name_and_password(args, stdin)
        if cmd == "add":
            return c.user_add(name, password)
        if password is None:
            raise ValueError("user passwd needs NAME:PASSWORD or --password-stdin")
        return c.user_passwd(name, password)
    if g == "role" and cmd in ("grant", "revoke"):
        if cmd == "grant":
            return c.role_grant(args.name, args.perm, args.range_key, prefix=args.prefix)
        return c.role_revoke(args.name, args.range_key, prefix=args.prefix)
    simple: dict[tuple[str, str], Callable[[], dict[str, Any]]] = {
        ("user", "delete"): lambda: c.user_delete(args.name),
        ("user", "get"): lambda: c.user_get(args.name),
        ("user", "list"): c.user_list,
        ("user", "grant-role"): lambda: c.user_grant_role(args.name, args.role),
        ("user", "revoke-role"): lambda: c.user_revoke_role(args.name, args.role),
        ("role", "add"): lambda: c.role_add(args.name),
        ("role", "delete"): lambda: c.role_delete(args.name),
        ("role", "get"): lambda: c.role_get(args.name),
        ("role", "list"): c.role_list,
        ("auth", "enable"): c.auth_enable,
        ("auth", "disable"): c.auth_disable,
        ("auth", "status"): c.auth_status,
    }
    return simple[(g, cmd)]()


def _exit_code(exc: ClientError) -> int:
    if isinstance(exc, BadRequest):
        return EXIT_USAGE
    if isinstance(exc, (Unauthenticated, PermissionDenied, NotFound, Conflict)):
        return EXIT_FAILED
    return EXIT_UNAVAILABLE


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    client_factory: ClientFactory | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
) -> int:
    env = os.environ if environ is None else environ
    try:
        args = build_parser(env).parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = sys.stdout if stdout is None else stdout
    factory = client_factory or (lambda endpoints, options: Client(endpoints, **options))
    try:
        with factory(args.endpoints, client_options(args, env)) as client:
            answer = run(args, client, sys.stdin if stdin is None else stdin)
    except ClientError as exc:
        print(f"raftkv: {exc}", file=sys.stderr)
        return _exit_code(exc)
    except (ValueError, OSError) as exc:  # a bad argument, endpoint or certificate file
        print(f"raftkv: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out.write(json.dumps(answer, sort_keys=True) + "\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
