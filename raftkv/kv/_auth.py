"""The store's auth state, as etcd v3's: users, roles, permissions on keys and prefixes, the
enabled flag and the token secret. Pure: no I/O, no clock, no randomness (the secret and the
password hashes come inside the commands, made by the node that proposed them).

Rules (``AuthState.verdict``):

* auth disabled: everything is allowed, to anyone, with or without an identity;
* enabled: a request needs a user that exists; a user holding the ``root`` role may do
  anything; otherwise every key range the request reads must be inside one ``read`` (or
  ``readwrite``) permission of one of the user's roles, every range it writes inside one
  ``write`` (or ``readwrite``) permission, and what ``Needs.root`` marks (membership,
  compaction, snapshots, auth itself) is refused.

A permission names a key (``prefix=False``) or every key under a prefix (``b""``: all keys).
Ranges are not merged: a range is covered only if one permission covers it whole.

Every change bumps ``revision``; a user's own ``revision`` is the auth revision of its last
change (added, password, roles), so a token that names an older one is stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum

__all__ = [
    "ROOT",
    "AuthState",
    "KeyRange",
    "Needs",
    "Perm",
    "Permission",
    "Role",
    "User",
    "Verdict",
    "check_name",
]

ROOT = "root"
_MAX_NAME = 128


class Perm(IntEnum):
    READ = 1
    WRITE = 2
    READWRITE = 3


@dataclass(frozen=True, slots=True)
class KeyRange:
    """One key, or (``prefix``) every key that starts with ``key``."""

    key: bytes
    prefix: bool = False

    def within(self, other: KeyRange) -> bool:
        """Is every key of this range in ``other``?"""
        if other.prefix:
            return self.key.startswith(other.key)
        return not self.prefix and self.key == other.key


EVERY_KEY = KeyRange(b"", prefix=True)


@dataclass(frozen=True, slots=True)
class Permission:
    perm: Perm
    range: KeyRange

    def covers(self, r: KeyRange, *, write: bool) -> bool:
        bit = Perm.WRITE if write else Perm.READ
        return bool(self.perm & bit) and r.within(self.range)


@dataclass(frozen=True, slots=True)
class Needs:
    """What a request needs: read and write access to key ranges, or root. Nothing at all:
    any user (auth enabled) or anyone (disabled)."""

    read: tuple[KeyRange, ...] = ()
    write: tuple[KeyRange, ...] = ()
    root: bool = False


ROOT_ONLY = Needs(root=True)
ANY_USER = Needs()


class Verdict(Enum):
    ALLOWED = "allowed"
    UNAUTHENTICATED = "unauthenticated"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    permissions: tuple[Permission, ...] = ()


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password: str | None  # the hash (``raftkv.kv.hash_password``); None: no password login
    roles: tuple[str, ...]  # sorted
    revision: int


def check_name(name: object, what: str) -> str:
    """A user or role name: a non-empty string of at most 128 printable characters."""
    if not isinstance(name, str) or not 0 < len(name) <= _MAX_NAME or not name.isprintable():
        raise ValueError(f"a {what} name is 1 to {_MAX_NAME} printable characters")
    return name


@dataclass(slots=True)
class AuthState:
    """The replicated auth state. Changed only by ``raftkv.kv.KVStateMachine`` applying auth
    commands; read by every member to check requests."""

    enabled: bool = False
    secret: bytes = b""  # HMAC key of the tokens, set by ``auth enable``
    revision: int = 0
    users: dict[str, User] = field(default_factory=dict)
    roles: dict[str, Role] = field(default_factory=dict)

    def verdict(self, user: str | None, needs: Needs) -> Verdict:
        if not self.enabled:
            return Verdict.ALLOWED
        found = None if user is None else self.users.get(user)
        if found is None:
            return Verdict.UNAUTHENTICATED
        if ROOT in found.roles:
            return Verdict.ALLOWED
        if needs.root:
            return Verdict.DENIED
        perms = [p for name in found.roles if (r := self.roles.get(name)) for p in r.permissions]
        for ranges, write in ((needs.read, False), (needs.write, True)):
            for want in ranges:
                if not any(p.covers(want, write=write) for p in perms):
                    return Verdict.DENIED
        return Verdict.ALLOWED

    def can_enable(self) -> str | None:
        """Why auth cannot be enabled now (None: it can)."""
        root = self.users.get(ROOT)
        if ROOT not in self.roles or root is None or ROOT not in root.roles:
            return "auth needs a 'root' user holding the 'root' role first"
        return None

    def copy(self) -> AuthState:
        return replace(self, users=dict(self.users), roles=dict(self.roles))
