"""What each command needs (``needs_of``) and how an auth command changes the auth state
(``change_auth``). Both are pure: the state machine calls them when it applies an entry, and
the daemon calls ``needs_of`` (through ``KVService``) to check a request before proposing it,
so the edge and the log judge by the same rules.

Following etcd: a put or delete needs write on its key, a prefix delete write on the prefix;
a transaction needs read on every compared key and every range it reads and write on every key
it may write, on both branches; a lease revoke needs write on every key attached to the lease;
a grant needs only a user; compaction, checkpoints and auth changes need root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ._auth import (
    ANY_USER,
    ROOT,
    ROOT_ONLY,
    AuthState,
    KeyRange,
    Needs,
    Role,
    User,
)
from ._auth_commands import (
    AuthCommand,
    AuthDisable,
    AuthEnable,
    RoleAdd,
    RoleDelete,
    RoleGrant,
    RoleRevoke,
    UserAdd,
    UserDelete,
    UserGrant,
    UserPasswd,
    UserRevoke,
)
from ._commands import (
    Command,
    CompactCommand,
    DeleteCommand,
    DeletePrefixCommand,
    LeaseCheckpointCommand,
    LeaseGrantCommand,
    LeaseRevokeCommand,
    PutCommand,
    RangeOp,
    TxnCommand,
)
from ._results import AuthChanged, AuthFailed

__all__ = ["change_auth", "needs_of"]


def needs_of(command: Command | AuthCommand, lease_keys: Callable[[int], Iterable[bytes]]) -> Needs:
    """What ``command`` needs; ``lease_keys(lease)``: the keys attached to a lease now."""
    match command:
        case PutCommand(key) | DeleteCommand(key):
            return Needs(write=(KeyRange(key),))
        case DeletePrefixCommand(prefix):
            return Needs(write=(KeyRange(prefix, prefix=True),))
        case TxnCommand():
            return _txn_needs(command)
        case LeaseGrantCommand():
            return ANY_USER
        case LeaseRevokeCommand(lease):
            return Needs(write=tuple(KeyRange(k) for k in lease_keys(lease)))
        case CompactCommand() | LeaseCheckpointCommand():
            return ROOT_ONLY
        case _:
            return ROOT_ONLY  # every auth command


def _txn_needs(txn: TxnCommand) -> Needs:
    read = [KeyRange(c.key) for c in txn.compares]
    write: list[KeyRange] = []
    for op in (*txn.success, *txn.failure):
        match op:
            case RangeOp(key, prefix):
                read.append(KeyRange(key, prefix))
            case PutCommand(key) | DeleteCommand(key):
                write.append(KeyRange(key))
            case DeletePrefixCommand(prefix):
                write.append(KeyRange(prefix, prefix=True))
    return Needs(read=tuple(read), write=tuple(write))


def change_auth(state: AuthState, command: AuthCommand) -> AuthChanged | AuthFailed:
    """Apply ``command`` to ``state`` (in place, only when it succeeds)."""
    failed = _refusal(state, command)
    if failed is not None:
        return failed
    state.revision += 1
    rev = state.revision
    match command:
        case AuthEnable(secret):
            if not state.enabled:
                state.enabled, state.secret = True, secret
        case AuthDisable():
            state.enabled, state.secret = False, b""
        case UserAdd(name, password):
            state.users[name] = User(name, password, (), rev)
        case UserDelete(name):
            del state.users[name]
        case UserPasswd(name, password):
            state.users[name] = _user(state, name, password=password, revision=rev)
        case UserGrant(name, role) | UserRevoke(name, role):
            held = set(state.users[name].roles)
            if isinstance(command, UserGrant):
                held.add(role)
            else:
                held.discard(role)
            state.users[name] = _user(state, name, roles=tuple(sorted(held)), revision=rev)
        case RoleAdd(name):
            state.roles[name] = Role(name)
        case RoleDelete(name):
            del state.roles[name]
            for user in [u for u in state.users.values() if name in u.roles]:
                roles = tuple(r for r in user.roles if r != name)
                state.users[user.name] = _user(state, user.name, roles=roles, revision=rev)
        case RoleGrant(name, permission):
            kept = [p for p in state.roles[name].permissions if p.range != permission.range]
            state.roles[name] = Role(name, (*kept, permission))
        case RoleRevoke(name, key_range):
            kept = [p for p in state.roles[name].permissions if p.range != key_range]
            state.roles[name] = Role(name, tuple(kept))
    return AuthChanged(rev)


def _user(state: AuthState, name: str, **changes: object) -> User:
    old = state.users[name]
    fields: dict[str, object] = {
        "name": name,
        "password": old.password,
        "roles": old.roles,
        "revision": old.revision,
        **changes,
    }
    return User(**fields)  # type: ignore[arg-type]


def _refusal(state: AuthState, command: AuthCommand) -> AuthFailed | None:
    users, roles = state.users, state.roles
    match command:
        case AuthEnable():
            reason = state.can_enable()
            return None if reason is None else AuthFailed(reason, "refused")
        case AuthDisable():
            return None
        case UserAdd(name):
            return _exists("user", name) if name in users else None
        case UserDelete(name) | UserPasswd(name):
            if name not in users:
                return _missing("user", name)
            if isinstance(command, UserDelete) and name == ROOT and state.enabled:
                return AuthFailed(
                    "the root user cannot be deleted while auth is enabled", "refused"
                )
            return None
        case UserGrant(name, role) | UserRevoke(name, role):
            if name not in users:
                return _missing("user", name)
            if role not in roles and isinstance(command, UserGrant):
                return _missing("role", role)
            if isinstance(command, UserRevoke) and role not in users[name].roles:
                return AuthFailed(f"user {name!r} does not hold role {role!r}", "not found")
            if isinstance(command, UserRevoke) and (name, role) == (ROOT, ROOT) and state.enabled:
                return _refused("root keeps the root role while auth is enabled")
            return None
        case RoleAdd(name):
            return _exists("role", name) if name in roles else None
        case RoleDelete(name):
            if name not in roles:
                return _missing("role", name)
            if name == ROOT and state.enabled:
                return AuthFailed(
                    "the root role cannot be deleted while auth is enabled", "refused"
                )
            return None
        case RoleGrant(name) | RoleRevoke(name):
            if name not in roles:
                return _missing("role", name)
            if isinstance(command, RoleRevoke) and not any(
                p.range == command.range for p in roles[name].permissions
            ):
                return AuthFailed(f"role {name!r} has no permission on that range", "not found")
            return None


def _refused(reason: str) -> AuthFailed:
    return AuthFailed(reason, "refused")


def _missing(what: str, name: str) -> AuthFailed:
    return AuthFailed(f"no {what} named {name!r}", "not found")


def _exists(what: str, name: str) -> AuthFailed:
    return AuthFailed(f"a {what} named {name!r} exists already", "exists")
