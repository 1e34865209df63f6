"""``AuthAdmin``: the auth state on a running node: changes proposed through the log (password
hashes and the token secret made here, by the proposing node), logins and tokens checked
against this node's applied state, without a round trip.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

import trio

from .._errors import AuthRefused
from ._auth import AuthState
from ._auth_commands import AuthCommand, AuthEnable, UserAdd, UserPasswd
from ._commands import encode_command
from ._credentials import (
    TokenClaims,
    check_password,
    hash_password,
    issue_token,
    new_secret,
    read_token,
)
from ._results import AuthChanged, AuthFailed

if TYPE_CHECKING:
    from ._service import KVService

__all__ = ["DEFAULT_TOKEN_TTL", "AuthAdmin"]

DEFAULT_TOKEN_TTL = 300  # seconds, as etcd's simple tokens
_MAX_VERIFIED = 4096


class AuthAdmin:
    def __init__(self, service: KVService, token_ttl: int = DEFAULT_TOKEN_TTL) -> None:
        self.service = service
        self.token_ttl = token_ttl
        # Tokens whose signature checked out, with the secret that signed them: a client sends
        # the same token with every request, and a dict lookup is cheaper than an HMAC.
        self._verified: dict[str, tuple[bytes, TokenClaims]] = {}

    @property
    def state(self) -> AuthState:
        return self.service.store.auth

    async def change(self, command: AuthCommand) -> AuthChanged:
        """Propose an auth change (for the client this task acts for); the auth revision after
        it and the store's revision when it applied, or ``AuthRefused`` saying why not."""
        result = await self.service.propose(encode_command(command))
        if isinstance(result, AuthFailed):
            raise AuthRefused(result.reason, result.kind)
        assert isinstance(result, AuthChanged), result
        return result

    async def enable(self) -> AuthChanged:
        return await self.change(AuthEnable(new_secret()))

    async def add_user(self, name: str, password: str | None) -> AuthChanged:
        return await self.change(UserAdd(name, await _hashed(password)))

    async def set_password(self, name: str, password: str | None) -> AuthChanged:
        return await self.change(UserPasswd(name, await _hashed(password)))

    async def login(self, name: str, password: str) -> TokenClaims | None:
        """The claims of a new token if ``password`` is the user's (checked off the event loop:
        a hash takes tens of milliseconds), else None."""
        user = self.state.users.get(name)
        stored = None if user is None else user.password
        # Unknown users cost a hash too, so that timing does not tell which names exist.
        ok = await trio.to_thread.run_sync(check_password, password, stored or _dummy_hash())
        user = self.state.users.get(name)  # may have changed while we hashed
        if not ok or user is None or user.password != stored or not self.state.enabled:
            return None
        return TokenClaims(name, user.revision, int(time.time()) + self.token_ttl)

    def token(self, claims: TokenClaims) -> str:
        return issue_token(self.state.secret, claims)

    def user_of_token(self, token: str) -> str | None:
        """The user a valid, unexpired token of the current user revision names; else None."""
        state, now = self.state, time.time()
        known = self._verified.get(token)
        if known is not None and known[0] == state.secret and known[1].expires > now:
            claims = known[1]
        else:
            found = read_token(state.secret, token, now)
            if found is None:
                return None
            if len(self._verified) >= _MAX_VERIFIED:
                self._verified.clear()  # many clients: start over rather than grow
            self._verified[token] = (state.secret, found)
            claims = found
        user = state.users.get(claims.user)
        return claims.user if user is not None and user.revision == claims.revision else None

    def token_for(self, user: str) -> str | None:
        """A short-lived token for ``user``, for replaying its request on another member."""
        found = self.state.users.get(user)
        if found is None or not self.state.enabled:
            return None
        return self.token(TokenClaims(user, found.revision, int(time.time()) + 60))


@functools.cache
def _dummy_hash() -> str:
    return hash_password("", salt=bytes(16))


async def _hashed(password: str | None) -> str | None:
    if password is None:
        return None
    return await trio.to_thread.run_sync(hash_password, password)
