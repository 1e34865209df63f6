"""Passwords and tokens: stdlib only (``hashlib.scrypt``, ``hmac``), no state of their own.

A password is stored as ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (base64): salted, slow, computed by
the node that proposes the change, so the log and snapshots never hold a password. scrypt is
memory-hard (as argon2, unlike bcrypt) and in the standard library, so no new dependency.

A token is ``rk1.<user>.<user revision>.<expires>.<mac>``: the user's name (base64url), the
revision of the user it was issued for, its expiry (Unix seconds) and an HMAC-SHA256 of all that
with the cluster's secret (in the replicated auth state): any member checks it without a round
trip, and changing or deleting the user invalidates it (its revision moves on).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

__all__ = [
    "TokenClaims",
    "check_password",
    "hash_password",
    "issue_token",
    "new_secret",
    "read_token",
]

_SCRYPT_N: Final = 2**14  # ~16 MiB and ~50 ms per hash: slow for a guesser, fine for a login
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_MAX_N: Final = 2**20  # never trust a stored cost beyond this (1 GiB of memory)
_TOKEN_PREFIX: Final = "rk1"
_MAX_TOKEN: Final = 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]{1,512}")
_DIGITS = re.compile(r"[0-9]{1,19}")


def new_secret() -> bytes:
    """A fresh token secret (drawn by the node that proposes ``auth enable``)."""
    return secrets.token_bytes(32)


def hash_password(password: str, *, salt: bytes | None = None, n: int = _SCRYPT_N) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, _SCRYPT_R, _SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str | None) -> bool:
    """Does ``password`` match the stored hash? False for no hash or a malformed one."""
    if stored is None:
        return False
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(map(_DIGITS.fullmatch, parts[1:4])):
        return False
    n, r, p = (int(x) for x in parts[1:4])
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    try:
        salt, expected = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5])
    except binascii.Error:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    raw = password.encode("utf-8", "surrogatepass")
    return hashlib.scrypt(raw, salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n + 2**20, dklen=32)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user: str
    revision: int  # the user's revision when the token was issued
    expires: int  # Unix seconds


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes | None:
    if _B64URL.fullmatch(text) is None or len(text) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return data if _b64url(data) == text else None  # one spelling per token: no malleability


def _mac(secret: bytes, signed: str) -> str:
    return _b64url(hmac.new(secret, signed.encode("ascii"), hashlib.sha256).digest())


def issue_token(secret: bytes, claims: TokenClaims) -> str:
    user = _b64url(claims.user.encode("utf-8"))
    signed = f"{_TOKEN_PREFIX}.{user}.{claims.revision}.{claims.expires}"
    return f"{signed}.{_mac(secret, signed)}"


def read_token(secret: bytes, token: str, now: float) -> TokenClaims | None:
    """The claims of a token signed with ``secret`` that has not expired at ``now``; None for
    anything else (malformed, forged, expired, no secret). Never raises."""
    if not secret or len(token) > _MAX_TOKEN or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != _TOKEN_PREFIX:
        return None
    signed, mac = token[: token.rfind(".")], parts[4]
    if not hmac.compare_digest(_mac(secret, signed), mac):
        return None
    user, revision, expires = _unb64url(parts[1]), parts[2], parts[3]
    if user is None or not (_DIGITS.fullmatch(revision) and _DIGITS.fullmatch(expires)):
        return None
    try:
        name = user.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if int(expires) <= now:
        return None
    return TokenClaims(name, int(revision), int(expires))
