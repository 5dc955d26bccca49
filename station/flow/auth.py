"""Accounts, roles and sessions: argon2id password hashes (argon2-cffi), random session
tokens kept only as their SHA-256, one CSRF token per session."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES: Final = {
    "registrar": "登录员",
    "inspector": "检验员",
    "chief": "总检（授权签字人）",
    "admin": "管理员",
}
#: what each role may do (the pages and API check these, never the role names)
PERMISSIONS: Final = {
    "register": {"registrar"},
    "dispatch": {"registrar", "chief"},
    "lock_lane": {"chief", "admin"},
    "manual": {"inspector"},
    "review": {"chief"},
    "users": {"admin"},
    "audit": {"admin", "chief"},
}
_HASHER: Final = PasswordHasher()  # argon2id with the library's current parameters
MIN_PASSWORD: Final = 8


@functools.cache
def _dummy_hash() -> str:
    """Verified when the user is unknown, so that a login takes as long either way."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"a password has at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def password_ok(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: an unknown user, still hashed).
    Slow on purpose (argon2id): servers call it in a worker thread."""
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    """A random, unguessable token (session cookies, CSRF, owner links)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return secrets.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True, slots=True)
class Session:
    """A browser's session; ``username`` None before login."""

    token_hash: str
    csrf: str
    username: str | None = None
    name: str | None = None
    role: str | None = None

    def may(self, permission: str) -> bool:
        """Whether this session's user has ``permission``."""
        return self.role is not None and self.role in PERMISSIONS.get(permission, set())
