"""Hypothesis against the Guard's reading of credentials: no Authorization header, token or
certificate name crashes it, and none but a token signed with the cluster's secret, for the
user's current revision and not expired, is accepted."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import trio
from hypothesis import given
from hypothesis import strategies as st

from raftkv.kv import (
    ROOT,
    AuthAdmin,
    AuthEnable,
    KVStateMachine,
    Limits,
    RoleAdd,
    TokenClaims,
    UserAdd,
    UserGrant,
    encode_command,
    issue_token,
)
from raftkv_cli._guard import Guard
from raftkv_cli._http import HTTPError

SECRET = b"k" * 32


def _guard() -> tuple[Guard, str]:
    kv = KVStateMachine()
    for i, cmd in enumerate(
        [UserAdd(ROOT, None), RoleAdd(ROOT), UserGrant(ROOT, ROOT), AuthEnable(SECRET)], 1
    ):
        kv.apply(i, encode_command(cmd))
    service: Any = SimpleNamespace(store=kv, limits=Limits())
    service.auth = AuthAdmin(service)
    revision = kv.auth.users[ROOT].revision
    good = issue_token(SECRET, TokenClaims(ROOT, revision, int(time.time()) + 3600))
    return Guard(service), good


GUARD, GOOD = _guard()


def admit(headers: list[tuple[bytes, bytes]], path: str = "/v1/kv/k") -> int | str | None:
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode()}
    scope |= {"query_string": b"", "headers": headers, "client": None, "server": None}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def go() -> int | str | None:
        try:
            return await GUARD.admit(scope, receive)
        except HTTPError as exc:
            assert exc.status in (400, 401, 403), exc
            return exc.status

    return trio.run(go)


def test_the_good_token_is_root_and_nothing_is_anonymous() -> None:
    assert admit([(b"authorization", f"Bearer {GOOD}".encode())]) == ROOT
    assert admit([]) == 401


@given(st.binary(max_size=300))
def test_fuzz_any_authorization_header_is_refused_cleanly(value: bytes) -> None:
    result = admit([(b"authorization", value)])
    assert result == 401 or value.strip() == f"Bearer {GOOD}".encode()


@given(st.text(alphabet="Bb earr" + GOOD, max_size=400))
def test_fuzz_token_like_headers_are_refused_unless_exactly_the_token(text: str) -> None:
    result = admit([(b"authorization", text.encode())])
    scheme, _, token = text.strip().partition(" ")
    if result == ROOT:
        assert scheme.lower() == "bearer" and token.strip() == GOOD


@given(st.integers(0, len(GOOD) - 1), st.characters(codec="ascii", exclude_characters="\r\n"))
def test_fuzz_one_changed_character_is_a_forgery(at: int, char: str) -> None:
    forged = GOOD[:at] + char + GOOD[at + 1 :]
    result = admit([(b"authorization", f"Bearer {forged}".encode())])
    assert result == 401 or forged == GOOD
