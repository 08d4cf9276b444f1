"""API tokens: created once, shown once, stored as SHA-256 hashes, revocable by name.

A token is 32 random bytes (URL-safe text); its SHA-256 is what the table
keeps, so the database never holds a usable token. Roles: `operator` (every
endpoint) and `reviewer` (reads and review decisions).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import psycopg

from dealflow.errors import InvalidInput, NotFound
from state.database import Pool

ROLES = ("operator", "reviewer")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class TokenExists(InvalidInput):
    """A token by that name exists (revoked ones too: names are never reused)."""


@dataclass(frozen=True)
class Caller:
    """Who an API request comes from."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        """Whether the caller has `role` (operators may do everything)."""
        return self.role == "operator" or self.role == role


def digest(token: str) -> str:
    """What is stored for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(pool: Pool, name: str, role: str) -> str:
    """A new token for `name` with `role`; the only time it is ever shown."""
    if not _NAME.match(name):
        raise InvalidInput(f"--name: {name!r:.70} must be letters, digits and _.@- "
                           "(at most 64)")
    if role not in ROLES:
        raise InvalidInput(f"--role must be one of {', '.join(ROLES)}")
    token = secrets.token_urlsafe(32)
    try:
        with pool.connection() as conn:
            conn.execute("INSERT INTO dealflow_api_tokens (name, role, token_hash)"
                         " VALUES (%s, %s, %s)", (name, role, digest(token)))
    except psycopg.errors.UniqueViolation:
        raise TokenExists(f"a token named {name!r} exists; pick another name") from None
    return token


def revoke_token(pool: Pool, name: str) -> None:
    """Revoke the token `name` at once."""
    with pool.connection() as conn:
        row = conn.execute("UPDATE dealflow_api_tokens SET revoked_at = now() WHERE name = %s"
                           " AND revoked_at IS NULL RETURNING name", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no active token named {name!r:.70}")


def caller_of(pool: Pool, token: str) -> Caller | None:
    """The caller a bearer token stands for, or None."""
    with pool.connection() as conn:
        row = conn.execute("SELECT name, role FROM dealflow_api_tokens WHERE token_hash = %s"
                           " AND revoked_at IS NULL", (digest(token),)).fetchone()
    return Caller(name=row["name"], role=row["role"]) if row else None
