"""The auth commands of the CLI (``raftkv_cli._ctl_auth``): arguments to client calls, TLS and
user options to the client, exit statuses."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from raftkv.client import PermissionDenied, Unauthenticated
from raftkv_cli import _ctl_auth


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
            return {"ok": name}

        return call


def run(*argv: str, client: FakeClient | None = None, stdin: str = "", **env: str) -> tuple:
    fake = client or FakeClient()
    made: list[tuple[str, dict[str, Any]]] = []

    def factory(endpoints: str, options: dict[str, Any]) -> FakeClient:
        made.append((endpoints, options))
        return fake

    out = io.StringIO()
    code = _ctl_auth.main(
        list(argv), environ=env, client_factory=factory, stdin=io.StringIO(stdin), stdout=out
    )
    return code, fake.calls, made, out.getvalue()


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
    code, calls, _, out = run(*argv)
    assert code == 0 and calls == [call]
    assert json.loads(out) == {"ok": call[0]}


def test_the_password_can_come_from_stdin() -> None:
    code, calls, _, _ = run("user", "passwd", "alice", "--password-stdin", stdin="s3cret\n")
    assert code == 0 and calls == [("user_passwd", ("alice", "s3cret"), {})]


def test_tls_and_user_options_reach_the_client() -> None:
    argv = ["--endpoints", "https://h:1", "--cacert", "ca", "--cert", "c", "--key", "k"]
    code, _, made, _ = run(*argv, "--user", "root", "auth", "status", RAFTKV_PASSWORD="pw")
    assert code == 0
    ((endpoints, options),) = made
    assert endpoints == "https://h:1"
    assert options == {
        "timeout": 10.0, "ca": "ca", "cert": "c", "key": "k", "user": "root", "password": "pw"
    }  # fmt: skip


def test_a_user_without_a_password_is_a_usage_error() -> None:
    assert run("--user", "root", "auth", "status")[0] == _ctl_auth.EXIT_USAGE


@pytest.mark.parametrize("error", [Unauthenticated("no"), PermissionDenied("no")])
def test_refusals_exit_1(error: Exception) -> None:
    assert run("user", "list", client=FakeClient(error))[0] == _ctl_auth.EXIT_FAILED


def test_bad_usage_exits_2() -> None:
    assert run("role", "grant", "r", "everything", "k")[0] == _ctl_auth.EXIT_USAGE
    assert run("user", "passwd", "alice")[0] == _ctl_auth.EXIT_USAGE
