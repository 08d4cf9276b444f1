"""The inbox's sign-in sessions: a random id in an HTTP-only cookie, a CSRF token each.

A reviewer signs in once with a service token (`dealflow token create`); the
token itself is never stored in the browser. The session row keeps the id's
hash, the token's name and a CSRF token every form must echo; a revoked or
expired token ends its sessions at once (the lookup joins the token table), and
a session never lasts past its token's expiry.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from dealflow.service.auth import Caller, digest
from state.database import Pool

COOKIE = "dealflow_session"
SIGNIN_COOKIE = "dealflow_signin"  # the sign-in form's own CSRF token (double submit)
HOURS = 12


@dataclass(frozen=True)
class Session:
    """A signed-in reviewer."""

    caller: Caller
    csrf: str

    def form_ok(self, csrf: str | None) -> bool:
        """Whether a form echoed this session's CSRF token."""
        return bool(csrf) and hmac.compare_digest(self.csrf, csrf or "")


def open_session(pool: Pool, caller: Caller) -> str:
    """A new session for `caller` (ending at the latest when its token expires); its id."""
    session_id = secrets.token_urlsafe(32)
    with pool.connection() as conn:
        conn.execute("INSERT INTO dealflow_inbox_sessions (id_hash, token_name, csrf,"
                     " expires_at) SELECT %s, name, %s, least(clock_timestamp()"
                     " + make_interval(hours => %s), expires_at)"
                     " FROM dealflow_api_tokens WHERE name = %s",
                     (digest(session_id), secrets.token_urlsafe(24), HOURS, caller.name))
    return session_id


def session_of(pool: Pool, session_id: str | None) -> Session | None:
    """The live session with this id (its token neither revoked nor expired), or None."""
    if not session_id or len(session_id) > 200:
        return None
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT t.name, t.role, s.csrf FROM dealflow_inbox_sessions s JOIN"
            " dealflow_api_tokens t ON t.name = s.token_name WHERE s.id_hash = %s"
            " AND s.expires_at > clock_timestamp() AND t.revoked_at IS NULL"
            " AND (t.expires_at IS NULL OR t.expires_at > clock_timestamp())",
            (digest(session_id),)).fetchone()
    return Session(Caller(name=row["name"], role=row["role"]), row["csrf"]) if row else None


def close_session(pool: Pool, session_id: str | None) -> None:
    """End the session (signing out)."""
    if session_id:
        with pool.connection() as conn:
            conn.execute("DELETE FROM dealflow_inbox_sessions WHERE id_hash = %s",
                         (digest(session_id),))
