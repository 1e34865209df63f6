"""The auth commands of the CLI (``raftkv_cli.ctl._auth``): arguments to client calls, the TLS
and user options to the client, output, exit statuses."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from raftkv.client import PermissionDenied, Unauthenticated
from raftkv_cli import ctl
from raftkv_cli.ctl import _auth


class FakeClient:
    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail = fail

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> dict[str, Any]:
            if self.fail is not None:
                raise self.fail
            self.calls.append((name, args, kwargs))
            return {"ok": name, "auth_revision": 7, "revision": 3}

        return call


def run(*argv: str, client: FakeClient | None = None, stdin: str = "", **env: str) -> tuple:
    fake = client or FakeClient()
    made: list[str] = []

    def factory(endpoints: str, timeout: float) -> Any:
        made.append(endpoints)
        return fake

    out = io.BytesIO()
    code = ctl.main(
        list(argv),
        environ=env,
        client_factory=factory,
        stdin=io.BytesIO(stdin.encode()),
        stdout=out,
    )
    return code, fake.calls, made, out.getvalue().decode()


@pytest.mark.parametrize(
    ("argv", "call"),
    [
        (["user", "add", "alice:pw"], ("user_add", ("alice", "pw"), {})),
        (["user", "add", "bob"], ("user_add", ("bob", None), {})),
        (["user", "passwd", "alice:new"], ("user_passwd", ("alice", "new"), {})),
        (["user", "delete", "alice"], ("user_delete", ("alice",), {})),
        (["user", "list"], ("user_list", (), {})),
        (["user", "get", "alice"], ("user_get", ("alice",), {})),
        (["user", "grant-role", "alice", "r"], ("user_grant_role", ("alice", "r"), {})),
        (["user", "revoke-role", "alice", "r"], ("user_revoke_role", ("alice", "r"), {})),
        (["role", "add", "r"], ("role_add", ("r",), {})),
        (["role", "delete", "r"], ("role_delete", ("r",), {})),
        (["role", "list"], ("role_list", (), {})),
        (["role", "get", "r"], ("role_get", ("r",), {})),
        (
            ["role", "grant", "r", "read", "a/", "--prefix"],
            ("role_grant", ("r", "read", "a/"), {"prefix": True}),
        ),
        (["role", "revoke", "r", "k"], ("role_revoke", ("r", "k"), {"prefix": False})),
        (["auth", "enable"], ("auth_enable", (), {})),
        (["auth", "disable"], ("auth_disable", (), {})),
        (["auth", "status"], ("auth_status", (), {})),
    ],
)
def test_each_command_makes_its_call(argv: list[str], call: tuple) -> None:
    code, calls, _, out = run("-w", "json", *argv)
    assert code == 0 and calls == [call]
    assert json.loads(out)["ok"] == call[0]


def test_a_change_prints_the_auth_revision() -> None:
    assert run("role", "add", "r")[3] == "7\n"
    assert "AUTH REVISION" in run("role", "add", "r", "-w", "table")[3]


def test_the_password_can_come_from_stdin() -> None:
    code, calls, _, _ = run("user", "passwd", "alice", "--password-stdin", stdin="s3cret\n")
    assert code == 0 and calls == [("user_passwd", ("alice", "s3cret"), {})]


def test_tls_and_user_options_become_client_arguments() -> None:
    argv = ["--cacert", "ca", "--cert", "c", "--key", "k", "--user", "root", "auth", "status"]
    args = ctl.build_parser({}).parse_args(argv)
    options = _auth.client_options(args, {"RAFTKV_PASSWORD": "pw"})
    assert options == {"ca": "ca", "cert": "c", "key": "k", "user": "root", "password": "pw"}
    args = ctl.build_parser({}).parse_args(["--user", "alice:s3", "auth", "status"])
    assert _auth.client_options(args, {}) == {"user": "alice", "password": "s3"}
    assert _auth.client_options(ctl.build_parser({}).parse_args(["auth", "status"]), {}) == {}


def test_the_global_key_option_does_not_clash_with_a_commands_key() -> None:
    args = ctl.build_parser({}).parse_args(["--key", "tls.key", "--cert", "c", "put", "k", "v"])
    assert args.key in {b"k", "k"}
    assert _auth.client_options(args, {})["key"] == "tls.key"


def test_a_user_without_a_password_is_a_usage_error() -> None:
    assert run("--user", "root", "auth", "status")[0] == ctl.EXIT_USAGE


def test_a_missing_certificate_file_is_a_usage_error() -> None:
    argv = ["--cacert", "/nonexistent/ca.pem", "--endpoints", "https://127.0.0.1:1"]
    code = ctl.main([*argv, "auth", "status"], environ={}, stdout=io.BytesIO())
    assert code == ctl.EXIT_USAGE


@pytest.mark.parametrize("error", [Unauthenticated("no"), PermissionDenied("no")])
def test_refusals_exit_1(error: Exception) -> None:
    assert run("user", "list", client=FakeClient(error))[0] == ctl.EXIT_FAILED


def test_bad_usage_exits_2() -> None:
    assert run("role", "grant", "r", "everything", "k")[0] == ctl.EXIT_USAGE
    assert run("user", "passwd", "alice")[0] == ctl.EXIT_USAGE
