"""The auth state in the store: commands, the apply-time check, snapshots (format 4, and the
older formats still read), passwords and tokens."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkv import CorruptSnapshot
from raftkv.kv import (
    ROOT,
    AccessRefused,
    AsUser,
    AuthChanged,
    AuthDisable,
    AuthEnable,
    AuthFailed,
    KeyRange,
    KVStateMachine,
    LeaseGrantCommand,
    LeaseGranted,
    LeaseRevokeCommand,
    Perm,
    Permission,
    PutCommand,
    PutResult,
    RangeOp,
    RoleAdd,
    RoleDelete,
    RoleGrant,
    RoleRevoke,
    TokenClaims,
    TxnCommand,
    TxnResult,
    UserAdd,
    UserDelete,
    UserGrant,
    UserPasswd,
    UserRevoke,
    check_password,
    decode_command,
    encode_command,
    hash_password,
    issue_token,
    read_token,
)
from raftkv.kv import Command as KVCommandType

SECRET = b"s" * 32


class Store:
    """A state machine and its next index."""

    def __init__(self) -> None:
        self.kv = KVStateMachine()
        self.index = 0

    def apply(self, command: KVCommandType) -> object:
        self.index += 1
        return self.kv.apply(self.index, encode_command(command))

    def as_user(self, user: str | None, command: KVCommandType) -> object:
        return self.apply(AsUser(user, command))  # type: ignore[arg-type]


def with_auth(*grants: tuple[str, Permission]) -> Store:
    """A store with root, and a user ``alice`` holding role ``r`` with ``grants``; auth on."""
    s = Store()
    for cmd in (UserAdd(ROOT, None), RoleAdd(ROOT), UserGrant(ROOT, ROOT), RoleAdd("r")):
        assert isinstance(s.apply(cmd), AuthChanged)
    for role, perm in grants:
        assert isinstance(s.apply(RoleGrant(role, perm)), AuthChanged)
    s.apply(UserAdd("alice", None))
    s.apply(UserGrant("alice", "r"))
    assert isinstance(s.apply(AuthEnable(SECRET)), AuthChanged)
    return s


def rw(prefix: bytes, perm: Perm = Perm.READWRITE) -> tuple[str, Permission]:
    return "r", Permission(perm, KeyRange(prefix, prefix=True))


AUTH_COMMANDS = [
    AuthEnable(SECRET),
    AuthDisable(),
    UserAdd("u", "scrypt$hash"),
    UserAdd("u", None),
    UserDelete("u"),
    UserPasswd("u", None),
    UserGrant("u", "r"),
    UserRevoke("u", "r"),
    RoleAdd("r"),
    RoleDelete("r"),
    RoleGrant("r", Permission(Perm.READ, KeyRange(b"a/", prefix=True))),
    RoleGrant("r", Permission(Perm.WRITE, KeyRange(b"k"))),
    RoleRevoke("r", KeyRange(b"a/", prefix=True)),
]


@pytest.mark.parametrize("command", AUTH_COMMANDS, ids=repr)
def test_auth_commands_round_trip(command: KVCommandType) -> None:
    assert decode_command(encode_command(command)) == command
    wrapped = AsUser("alice", command)  # type: ignore[arg-type]
    assert decode_command(encode_command(wrapped)) == wrapped


def test_a_wrapped_command_inside_a_wrapped_command_is_refused() -> None:
    inner = encode_command(AsUser(None, PutCommand(b"k", b"v")))
    outer = cbor2.dumps([1, 11, "root", inner])
    kv = KVStateMachine()
    assert type(kv.apply(1, outer)).__name__ == "InvalidCommand"


def test_auth_cannot_be_enabled_without_root() -> None:
    s = Store()
    result = s.apply(AuthEnable(SECRET))
    assert isinstance(result, AuthFailed) and "root" in result.reason
    s.apply(UserAdd(ROOT, None))
    s.apply(RoleAdd(ROOT))
    assert isinstance(s.apply(AuthEnable(SECRET)), AuthFailed)  # root lacks the root role
    s.apply(UserGrant(ROOT, ROOT))
    assert isinstance(s.apply(AuthEnable(SECRET)), AuthChanged)
    assert s.kv.auth.enabled and s.kv.auth.secret == SECRET


def test_disabled_auth_lets_anyone_do_anything() -> None:
    s = Store()
    assert isinstance(s.as_user(None, PutCommand(b"k", b"v")), PutResult)
    assert isinstance(s.as_user("nobody", RoleAdd("x")), AuthChanged)


def test_enabled_auth_refuses_anonymous_and_unknown_users_at_apply() -> None:
    s = with_auth(rw(b"a/"))
    for user in (None, "mallory"):
        result = s.as_user(user, PutCommand(b"a/1", b"v"))
        assert result == AccessRefused(user, False, 0)
    assert s.kv.get(b"a/1") is None


def test_permissions_on_a_prefix() -> None:
    s = with_auth(rw(b"a/", Perm.WRITE))
    assert isinstance(s.as_user("alice", PutCommand(b"a/1", b"v")), PutResult)
    assert s.as_user("alice", PutCommand(b"b/1", b"v")) == AccessRefused("alice", True, 1)
    read = TxnCommand(success=(RangeOp(b"a/", prefix=True),))
    assert isinstance(s.as_user("alice", read), AccessRefused)  # write only, no read


def test_a_transaction_with_one_key_outside_is_refused_whole() -> None:
    s = with_auth(rw(b"a/"))
    txn = TxnCommand(success=(PutCommand(b"a/1", b"v"), PutCommand(b"b/1", b"v")))
    assert isinstance(s.as_user("alice", txn), AccessRefused)
    assert s.kv.get(b"a/1") is None and s.kv.revision == 0
    ok = TxnCommand(success=(PutCommand(b"a/1", b"v"), RangeOp(b"a/", prefix=True)))
    assert isinstance(s.as_user("alice", ok), TxnResult)


def test_a_permission_on_one_key_does_not_cover_a_prefix() -> None:
    s = with_auth(("r", Permission(Perm.READWRITE, KeyRange(b"k"))))
    assert isinstance(s.as_user("alice", PutCommand(b"k", b"v")), PutResult)
    assert isinstance(s.as_user("alice", PutCommand(b"k2", b"v")), AccessRefused)
    wide = TxnCommand(success=(RangeOp(b"k", prefix=True),))
    assert isinstance(s.as_user("alice", wide), AccessRefused)


def test_root_may_do_anything_and_others_no_admin() -> None:
    s = with_auth(rw(b""))
    assert isinstance(s.as_user(ROOT, RoleAdd("x")), AuthChanged)
    assert isinstance(s.as_user("alice", RoleAdd("y")), AccessRefused)
    assert isinstance(s.as_user("alice", AuthDisable()), AccessRefused)
    assert s.kv.auth.enabled


def test_lease_revoke_needs_write_on_every_attached_key() -> None:
    s = with_auth(rw(b"a/"))
    s.apply(LeaseGrantCommand(7, 60))
    s.apply(PutCommand(b"a/1", b"v", lease=7))
    s.apply(PutCommand(b"b/1", b"v", lease=7))  # bare: the node's own command, unchecked
    assert isinstance(s.as_user("alice", LeaseRevokeCommand(7)), AccessRefused)
    assert isinstance(s.as_user("alice", LeaseGrantCommand(8, 60)), LeaseGranted)  # any user


def test_user_revision_moves_on_every_change_of_the_user() -> None:
    s = with_auth()
    first = s.kv.auth.users["alice"].revision
    s.as_user(ROOT, UserPasswd("alice", "h"))
    second = s.kv.auth.users["alice"].revision
    s.as_user(ROOT, UserRevoke("alice", "r"))
    third = s.kv.auth.users["alice"].revision
    assert first < second < third
    s.as_user(ROOT, RoleAdd("q"))
    s.as_user(ROOT, UserGrant("alice", "q"))
    s.as_user(ROOT, RoleDelete("q"))
    assert s.kv.auth.users["alice"].roles == ()


def test_root_cannot_lock_itself_out_while_enabled() -> None:
    s = with_auth()
    for cmd in (UserDelete(ROOT), RoleDelete(ROOT), UserRevoke(ROOT, ROOT)):
        result = s.as_user(ROOT, cmd)
        assert isinstance(result, AuthFailed) and result.kind == "refused", cmd


def test_snapshot_carries_the_auth_state() -> None:
    s = with_auth(rw(b"a/"), ("r", Permission(Perm.READ, KeyRange(b"k"))))
    s.as_user(ROOT, UserPasswd("alice", hash_password("pw", n=2)))
    restored = KVStateMachine()
    restored.restore(s.kv.snapshot())
    assert restored.auth == s.kv.auth
    assert restored.snapshot() == s.kv.snapshot()


def test_version_3_snapshot_restores_with_auth_disabled() -> None:
    v3 = cbor2.dumps(["raftkv-kv", 3, 1, 5, 0, 1, 1, 0])
    v3 += cbor2.dumps([b"k", b"v", 1, 1, 1, 0]) + cbor2.dumps([1, b"k"])
    kv = KVStateMachine()
    kv.restore(v3)
    assert kv.get(b"k") is not None and kv.applied_index == 5
    assert not kv.auth.enabled and not kv.auth.users


def _v4(auth: list[object], *records: list[object]) -> bytes:
    head = cbor2.dumps(["raftkv-kv", 4, 0, 0, 0, 0, 0, 0]) + cbor2.dumps(auth)
    return head + b"".join(cbor2.dumps(r) for r in records)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (cbor2.dumps(["raftkv-kv", 4, 0, 0, 0, 0, 0, 0]), "undecodable"),
        (_v4([True, b"", 0, 0, 0]), "exactly when it has a secret"),
        (_v4([True, SECRET, 0, 0, 0]), "without a root user"),
        (_v4([False, b"", 1, 1, 0], ["u", None, 1, "r"]), "role the snapshot does not have"),
        (_v4([False, b"", 1, 2, 0], ["u", None, 1], ["a", None, 1]), "ascending"),
        (_v4([False, b"", 1, 1, 0], ["u", None, 5]), "inconsistent user"),
        (_v4([False, b"", 0, 0, 1], ["r", 4, b"k", False]), "bad permission"),
        (_v4([False, b"", 0, 0, 1], ["r", 1, b"", False]), "range"),
    ],
)
def test_damaged_auth_section_is_refused(data: bytes, reason: str) -> None:
    kv = KVStateMachine()
    with pytest.raises(CorruptSnapshot, match=reason):
        kv.restore(data)


def test_password_hash_checks_and_refuses() -> None:
    stored = hash_password("correct horse", n=2**4)
    assert check_password("correct horse", stored)
    assert not check_password("correct hors", stored)
    assert not check_password("x", None)
    assert not check_password("x", "scrypt$99999999$8$1$AA==$AA==")  # absurd cost refused
    assert hash_password("same", n=2**4) != hash_password("same", n=2**4)  # salted


def test_tokens_name_user_revision_and_expire() -> None:
    token = issue_token(SECRET, TokenClaims("alice", 4, 1000))
    assert read_token(SECRET, token, 999) == TokenClaims("alice", 4, 1000)
    assert read_token(SECRET, token, 1000) is None  # expired
    assert read_token(b"t" * 32, token, 0) is None  # another cluster's secret
    assert read_token(b"", token, 0) is None  # auth disabled: no secret


TOKEN = issue_token(SECRET, TokenClaims("alice", 4, 2**40))


@given(st.text(max_size=300))
def test_fuzz_no_text_is_a_token(text: str) -> None:
    assert read_token(SECRET, text, 0) is None or text == TOKEN


@given(st.integers(0, len(TOKEN) - 1), st.characters(codec="ascii"))
def test_fuzz_no_altered_token_is_accepted(at: int, char: str) -> None:
    forged = TOKEN[:at] + char + TOKEN[at + 1 :]
    claims = read_token(SECRET, forged, 0)
    assert claims is None or forged == TOKEN


@given(st.text(min_size=1, max_size=40), st.integers(0, 2**40), st.integers(1, 2**40))
def test_fuzz_tokens_round_trip(user: str, revision: int, expires: int) -> None:
    claims = TokenClaims(user, revision, expires)
    token = issue_token(SECRET, claims)
    assert read_token(SECRET, token, expires - 1) == claims
