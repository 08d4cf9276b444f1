"""API tokens: created once, shown once, stored as SHA-256 hashes, revocable, may expire.

A token is 32 random bytes (URL-safe text); its SHA-256 is what the table
keeps, so the database never holds a usable token. Roles: `operator` (every
endpoint) and `reviewer` (reads and review decisions). A token created with a
lifetime (`--expires-in 30d`) is refused after it like a revoked one.

`authenticate` is the one check of a presented token (the API's bearer header,
the inbox's sign-in): one statement that looks the token up and, when it names
no live token, counts a failure for the client's address in a fixed window
(`Throttle`). Past the limit, the address is answered 429 (`Throttled`, with
the seconds until the window ends) whatever it presents, a right token
included: otherwise guessing would go on at full speed. The count is in
Postgres, so every API process on the database shares it. Successful checks
cost what they did: the same one statement, nothing counted, no delay.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from dealflow.errors import DealflowError, InvalidInput, NotFound
from state.config import Settings
from state.database import Pool

ROLES = ("operator", "reviewer")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
UNKNOWN = "unknown or revoked token"

# Look the token up; if it is not live, count a failure for the client (a new window
# when the last one ended) and sweep a few rows of windows long over. `until` is set
# when the client is throttled: it was at the limit already, or this failure passed it.
_AUTHENTICATE = """
WITH token AS (
    SELECT name, role, expires_at, expires_at <= clock_timestamp() AS expired
    FROM dealflow_api_tokens WHERE token_hash = %(hash)s AND revoked_at IS NULL
), blocked AS (
    SELECT window_end FROM dealflow_auth_failures
    WHERE client = %(client)s AND failures >= %(limit)s AND window_end > clock_timestamp()
), failure AS (
    INSERT INTO dealflow_auth_failures AS f (client, failures, window_end)
    SELECT %(client)s, 1, clock_timestamp() + make_interval(secs => %(window)s)
    WHERE NOT EXISTS (SELECT FROM token WHERE expired IS NOT TRUE)
    ON CONFLICT (client) DO UPDATE SET
        failures = CASE WHEN f.window_end > clock_timestamp() THEN f.failures + 1 ELSE 1 END,
        window_end = CASE WHEN f.window_end > clock_timestamp() THEN f.window_end
                          ELSE excluded.window_end END
    RETURNING failures, window_end
), swept AS (
    DELETE FROM dealflow_auth_failures WHERE client IN (
        SELECT client FROM dealflow_auth_failures
        WHERE window_end < clock_timestamp() - interval '1 hour' AND client <> %(client)s
          AND EXISTS (SELECT FROM failure)
        LIMIT 100 FOR UPDATE SKIP LOCKED)
)
SELECT t.name, t.role, t.expires_at, t.expired, w.until,
       greatest(1, ceil(extract(epoch FROM w.until - clock_timestamp())))::int AS retry_after
FROM (VALUES (true)) AS one (x)
LEFT JOIN token t ON true
LEFT JOIN blocked b ON true
LEFT JOIN failure f ON true
CROSS JOIN LATERAL (SELECT coalesce(b.window_end, CASE WHEN f.failures > %(limit)s
                                                       THEN f.window_end END) AS until) w
"""


class TokenExists(InvalidInput):
    """A token by that name exists (revoked ones too: names are never reused)."""


class Unauthenticated(DealflowError):
    """The presented token is unknown, revoked or expired (HTTP 401)."""

    @property
    def http_status(self) -> int:
        """401: the credentials do not stand for anyone."""
        return 401


class Throttled(DealflowError):
    """Too many failed authentications from this address in the window (HTTP 429)."""

    def __init__(self, retry_after: int) -> None:
        """Refused for `retry_after` more seconds (the `Retry-After` header)."""
        super().__init__(f"too many failed authentications from your address; try again "
                         f"in {retry_after} s")
        self.retry_after = retry_after

    @property
    def http_status(self) -> int:
        """429: Too Many Requests."""
        return 429


@dataclass(frozen=True)
class Caller:
    """Who an API request comes from."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        """Whether the caller has `role` (operators may do everything)."""
        return self.role == "operator" or self.role == role


@dataclass(frozen=True)
class Throttle:
    """How many failed authentications an address may make per window."""

    max_failures: int = 10
    window_seconds: float = 60.0

    @classmethod
    def of(cls, settings: Settings) -> Throttle:
        """The throttle `settings` configure (`DEALFLOW_AUTH_MAX_FAILURES` and window)."""
        return cls(settings.auth_max_failures, settings.auth_failure_window_seconds)


@dataclass(frozen=True)
class TokenInfo:
    """A token as `dealflow token list` shows it (never the token itself)."""

    name: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    expired: bool

    @property
    def state(self) -> str:
        """`active`, `expired` or `revoked`."""
        return "revoked" if self.revoked_at else "expired" if self.expired else "active"


def digest(token: str) -> str:
    """What is stored for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


def client_key(address: str | None) -> str:
    """Whom failures are counted against: the IP address (an IPv6 client by its /64)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def issue_token(pool: Pool, name: str, role: str,
                expires_in: timedelta | None = None) -> tuple[str, datetime | None]:
    """A new token for `name` with `role` (the only time it is shown), and its expiry."""
    if not _NAME.match(name):
        raise InvalidInput(f"--name: {name!r:.70} must be letters, digits and _.@- "
                           "(at most 64)")
    if role not in ROLES:
        raise InvalidInput(f"--role must be one of {', '.join(ROLES)}")
    if expires_in is not None and expires_in <= timedelta(0):
        raise InvalidInput("--expires-in must be longer than 0s")
    token = secrets.token_urlsafe(32)
    seconds = expires_in.total_seconds() if expires_in is not None else None
    try:
        with pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO dealflow_api_tokens (name, role, token_hash, expires_at) VALUES"
                " (%s, %s, %s, clock_timestamp() + make_interval(secs => %s))"
                " RETURNING expires_at", (name, role, digest(token), seconds)).fetchone()
    except psycopg.errors.UniqueViolation:
        raise TokenExists(f"a token named {name!r} exists; pick another name") from None
    return token, row["expires_at"] if row else None


def create_token(pool: Pool, name: str, role: str,
                 expires_in: timedelta | None = None) -> str:
    """A new token for `name` with `role`; the only time it is ever shown."""
    return issue_token(pool, name, role, expires_in)[0]


def revoke_token(pool: Pool, name: str) -> None:
    """Revoke the token `name` at once."""
    with pool.connection() as conn:
        row = conn.execute("UPDATE dealflow_api_tokens SET revoked_at = now() WHERE name = %s"
                           " AND revoked_at IS NULL RETURNING name", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no active token named {name!r:.70}")


def list_tokens(pool: Pool) -> list[TokenInfo]:
    """Every token ever created (revoked and expired ones too), oldest first."""
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT name, role, created_at, expires_at, revoked_at,"
            " coalesce(expires_at <= clock_timestamp(), false) AS expired"
            " FROM dealflow_api_tokens ORDER BY created_at, name").fetchall()
    return [TokenInfo(**row) for row in rows]


def authenticate(pool: Pool, token: str, address: str | None, throttle: Throttle) -> Caller:
    """The caller `token` stands for, presented from `address`.

    Raises `Throttled` when the address is past its failures for the window, else
    `Unauthenticated` for an unknown, revoked or expired token (counted as a failure).
    """
    with pool.connection() as conn:
        row = conn.execute(_AUTHENTICATE, {
            "hash": digest(token), "client": client_key(address),
            "limit": throttle.max_failures, "window": throttle.window_seconds}).fetchone()
    assert row is not None  # the statement always answers one row
    if row["until"] is not None:
        raise Throttled(row["retry_after"])
    if row["name"] is None:
        raise Unauthenticated(UNKNOWN)
    if row["expired"]:
        expired = row["expires_at"].astimezone(UTC)
        raise Unauthenticated(f"the token {row['name']!r} expired at "
                              f"{expired:%Y-%m-%d %H:%M:%S} UTC; ask for a new one")
    return Caller(name=row["name"], role=row["role"])
