"""The auth commands and the identity a client command carries, as CBOR (the log outlives the
code: these encodings must keep decoding)::

    [1, 11, user | null, command]          a command proposed for a client: ``user`` is who
                                           sent it (null: anonymous), ``command`` its bytes
    [1, 12, 1, secret]                     auth enable (the secret made by the proposer)
    [1, 12, 2]                             auth disable
    [1, 12, 3, name, password_hash | null] user add
    [1, 12, 4, name]                       user delete
    [1, 12, 5, name, password_hash | null] user password
    [1, 12, 6, name, role]                 user grant role
    [1, 12, 7, name, role]                 user revoke role
    [1, 12, 8, name]                       role add
    [1, 12, 9, name]                       role delete
    [1, 12, 10, name, perm, key, prefix]   role grant permission (perm 1 read, 2 write, 3 both)
    [1, 12, 11, name, key, prefix]         role revoke the permission on that range

A command without the identity wrapper comes from the node itself (lease expiry, automatic
compaction): the daemon wraps every command a client asks for, so none can reach the log bare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import cbor2

from ._auth import KeyRange, Perm, Permission, check_name

__all__ = [
    "AuthCommand",
    "AuthDisable",
    "AuthEnable",
    "RoleAdd",
    "RoleDelete",
    "RoleGrant",
    "RoleRevoke",
    "UserAdd",
    "UserDelete",
    "UserGrant",
    "UserPasswd",
    "UserRevoke",
    "decode_auth_command",
    "encode_auth_command",
]

OP_AS_USER: Final = 11
OP_AUTH: Final = 12


@dataclass(frozen=True, slots=True)
class AuthEnable:
    secret: bytes  # at least 32 random bytes, drawn by the proposing node


@dataclass(frozen=True, slots=True)
class AuthDisable:
    pass


@dataclass(frozen=True, slots=True)
class UserAdd:
    name: str
    password: str | None  # a hash, never the password


@dataclass(frozen=True, slots=True)
class UserDelete:
    name: str


@dataclass(frozen=True, slots=True)
class UserPasswd:
    name: str
    password: str | None


@dataclass(frozen=True, slots=True)
class UserGrant:
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class UserRevoke:
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class RoleAdd:
    name: str


@dataclass(frozen=True, slots=True)
class RoleDelete:
    name: str


@dataclass(frozen=True, slots=True)
class RoleGrant:
    name: str
    permission: Permission


@dataclass(frozen=True, slots=True)
class RoleRevoke:
    name: str
    range: KeyRange


AuthCommand = (
    AuthEnable
    | AuthDisable
    | UserAdd
    | UserDelete
    | UserPasswd
    | UserGrant
    | UserRevoke
    | RoleAdd
    | RoleDelete
    | RoleGrant
    | RoleRevoke
)


def encode_auth_command(command: AuthCommand, version: int) -> bytes:
    head = [version, OP_AUTH]
    match command:
        case AuthEnable(secret):
            return cbor2.dumps([*head, 1, secret])
        case AuthDisable():
            return cbor2.dumps([*head, 2])
        case UserAdd(name, password):
            return cbor2.dumps([*head, 3, name, password])
        case UserDelete(name):
            return cbor2.dumps([*head, 4, name])
        case UserPasswd(name, password):
            return cbor2.dumps([*head, 5, name, password])
        case UserGrant(name, role):
            return cbor2.dumps([*head, 6, name, role])
        case UserRevoke(name, role):
            return cbor2.dumps([*head, 7, name, role])
        case RoleAdd(name):
            return cbor2.dumps([*head, 8, name])
        case RoleDelete(name):
            return cbor2.dumps([*head, 9, name])
        case RoleGrant(name, Permission(perm, KeyRange(key, prefix))):
            return cbor2.dumps([*head, 10, name, int(perm), key, prefix])
        case RoleRevoke(name, KeyRange(key, prefix)):
            return cbor2.dumps([*head, 11, name, key, prefix])


def decode_auth_command(args: list[Any]) -> AuthCommand:
    """The auth command of ``[1, 12, *args]``; ``ValueError`` saying what is wrong."""
    if not args or type(args[0]) is not int:
        raise ValueError("an auth command needs its kind")
    kind, rest = args[0], args[1:]
    match kind, len(rest):
        case 1, 1 if type(rest[0]) is bytes and len(rest[0]) >= 32:
            return AuthEnable(rest[0])
        case 2, 0:
            return AuthDisable()
        case 3 | 5, 2 if rest[1] is None or type(rest[1]) is str:
            cls = UserAdd if kind == 3 else UserPasswd
            return cls(check_name(rest[0], "user"), rest[1])
        case 4, 1:
            return UserDelete(check_name(rest[0], "user"))
        case 6 | 7, 2:
            cls2 = UserGrant if kind == 6 else UserRevoke
            return cls2(check_name(rest[0], "user"), check_name(rest[1], "role"))
        case 8 | 9, 1:
            cls3 = RoleAdd if kind == 8 else RoleDelete
            return cls3(check_name(rest[0], "role"))
        case 10, 4 if type(rest[1]) is int and rest[1] in (1, 2, 3):
            key_range = _range(rest[2], rest[3])
            return RoleGrant(check_name(rest[0], "role"), Permission(Perm(rest[1]), key_range))
        case 11, 3:
            return RoleRevoke(check_name(rest[0], "role"), _range(rest[1], rest[2]))
    raise ValueError(f"unknown auth command {kind!r:.20} with {len(rest)} arguments")


def _range(key: Any, prefix: Any) -> KeyRange:
    if type(key) is not bytes or type(prefix) is not bool or (not key and not prefix):
        raise ValueError("a permission names a non-empty key or a prefix")
    return KeyRange(key, prefix)
