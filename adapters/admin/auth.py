"""Admin tokens with roles: ``admin`` may change things, ``viewer`` may only read.

A request presents its token as ``Authorization: Bearer <token>`` or in the
``semcache_admin`` cookie that the login page sets. No token, or an unknown
one, gives 401; a viewer on a write route gives 403. Tokens are compared with
:func:`hmac.compare_digest` and never logged: an actor is named by its role and
a short hash of its token (``admin:3f9a1c02``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("admin", "viewer")
COOKIE = "semcache_admin"
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: a role and a non-secret name for the audit log."""

    role: str
    name: str

    @property
    def can_write(self) -> bool:
        return self.role == "admin"


class AuthError(Exception):
    """A request is not allowed: ``status`` is 401 (who are you?) or 403 (not you)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AdminAuth:
    """Checks presented tokens against the configured ones (token -> role)."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        if not isinstance(tokens, Mapping) or not tokens:
            raise ValueError("the admin needs at least one token (a mapping of token -> role)")
        checked: list[tuple[bytes, Actor]] = []
        for token, role in tokens.items():
            if not isinstance(token, str) or len(token) < MIN_TOKEN_CHARS:
                raise ValueError(f"admin tokens must be strings of at least {MIN_TOKEN_CHARS} characters")
            if role not in ROLES:
                raise ValueError(f"token role must be one of {ROLES}, got {role!r}")
            digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
            checked.append((token.encode("utf-8"), Actor(role, f"{role}:{digest[:8]}")))
        self._tokens = checked

    def identify(self, token: str | None) -> Actor:
        """The actor of ``token``; ``AuthError(401)`` when it is missing or unknown."""
        if not token:
            raise AuthError(401, "missing admin token (Authorization: Bearer ...)")
        presented = token.encode("utf-8")
        found: Actor | None = None
        for known, actor in self._tokens:
            # Compare against every token so that timing does not reveal which one matched.
            if hmac.compare_digest(presented, known):
                found = actor
        if found is None:
            raise AuthError(401, "invalid admin token")
        return found

    @staticmethod
    def require_write(actor: Actor) -> None:
        """``AuthError(403)`` unless ``actor`` may change things."""
        if not actor.can_write:
            raise AuthError(403, f"role {actor.role!r} may not change anything; an admin token is needed")


def token_from(authorization: str | None, cookie: str | None) -> str | None:
    """The bearer token of an Authorization header, else the login cookie."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return cookie or None
