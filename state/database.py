"""Connections: resolve the database URL and open psycopg pools.

Pools use the settings the LangGraph Postgres checkpointer requires
(`autocommit=True`, `prepare_threshold=0`, `row_factory=dict_row`); through a
transaction pooler (`pooled`), none prepared; `session_connection` for a session.
"""

from __future__ import annotations

import os
import select
import threading
import time
import weakref
from typing import Any

import psycopg
from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from state.config import Settings, env_var
from state.embedded import embedded_database_url

Pool = ConnectionPool[Connection[DictRow]]

CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": 0,
    "row_factory": dict_row,
    # a process frozen inside a transaction (all of ours are short) must not hold
    # its row locks, a thread's lease included, for ever: the server ends it
    "options": "-c idle_in_transaction_session_timeout=30000",
    "connect_timeout": 10,  # a server that does not answer (a partition) is an outage too
}
# A pool gives up a reconnection attempt after this long (psycopg_pool's default, 5
# minutes, lets its backoff grow to a minute or more: the first request after a long
# outage then waited for it, or failed); a request waiting for a connection asks again
# every `ASK_EVERY_SECONDS`, which starts a new attempt once the last one gave up.
RECONNECT_SECONDS = 5.0
ASK_EVERY_SECONDS = 1.0


def connection_kwargs(pooled: bool = False) -> dict[str, Any]:
    """Connection settings; `application_name` names this process (`dealflow-PID`).

    `pooled` (a transaction pooler's URL): no prepared statements, no `options` (refused).
    """
    kwargs = {**CONNECTION_KWARGS, "application_name": f"dealflow-{os.getpid()}"}
    if pooled:
        kwargs.pop("options", None)
        kwargs["prepare_threshold"] = None
    return kwargs


def pool_options(settings: Settings) -> dict[str, Any]:
    """`open_pool`'s sizes and wait from the settings; `pooled` if a direct URL differs."""
    return {"min_size": settings.pool_min_size, "max_size": settings.pool_max_size,
            "wait_seconds": settings.pool_timeout_seconds,
            "pooled": settings.direct_database_url not in (None, settings.database_url)}


def session_connection(url: str) -> Connection[DictRow]:
    """A connection of its own, not a pool's, for what needs a session (a session lock)."""
    try:
        return Connection[DictRow].connect(url, **connection_kwargs())
    except psycopg.Error as exc:
        raise _unreachable(url, exc) from exc


class PoolExhausted(PoolTimeout):
    """Every connection of the pool stayed in use for as long as a request waits."""


def pool_timeout(stats: dict[str, int], timeout: float, variable: str) -> PoolTimeout:
    """Why no connection came: all `pool_max` in use (`variable` says how many), or none."""
    if stats.get("pool_size", 0) >= stats.get("pool_max", 0) and not stats.get("pool_available"):
        return PoolExhausted(f"no database connection free after {timeout:g} s: all "
                             f"{stats['pool_max']} of this process's pool are in use (raise "
                             f"{variable}, or {env_var('pool_timeout_seconds')} to wait longer)")
    return PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")


_shared: dict[str, Pool] = {}
_shared_lock = threading.Lock()


UNREACHABLE_ADVICE = ("nothing was changed: start Postgres (pg_isready tells) or point "
                      "DATABASE_URL at one that runs, then run the same command again")
POOLER_ADVICE = ("a transaction pooler (PgBouncer)? set DEALFLOW_DIRECT_DATABASE_URL to the "
                 "server itself (README: Running at scale)")


class DatabaseUnavailable(RuntimeError):
    """The configured Postgres server cannot be reached."""


def resolve_database_url(settings: Settings) -> str:
    """Return the configured URL, or start the embedded server and return its URL."""
    if settings.database_url:
        return settings.database_url
    return embedded_database_url(settings.data_dir)


def check_connection(url: str, timeout: int = 5, options: str | None = None) -> None:
    """Connect once (with `options`), failing fast with the server's own reason (first line)."""
    try:
        psycopg.connect(url, connect_timeout=timeout, options=options).close()
    except psycopg.Error as exc:
        raise _unreachable(url, exc) from exc


def _unreachable(url: str, exc: psycopg.Error) -> DatabaseUnavailable:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    advice = (POOLER_ADVICE if "unsupported startup parameter" in str(exc)
              else UNREACHABLE_ADVICE)
    return DatabaseUnavailable(f"cannot connect to Postgres at {redact_url(url)}: {reason}; "
                               f"{advice}")


class CheckedPool(ConnectionPool[Connection[DictRow]]):
    """psycopg_pool's pool, with its checkout check (one round trip) only when it can matter.

    A connection handed back moments ago, on whose socket the server has said
    nothing since, is handed out again unchecked. Any other is checked with
    psycopg_pool's own `check_connection`: one idle for `idle_seconds` or more,
    one the server wrote to (a termination notice, a shutdown), and every
    connection for `wary_seconds` after one came back broken, so that the
    siblings of a dropped connection (a server restart, terminated backends)
    are replaced on checkout instead of failing a step each.
    """

    def __init__(self, *args: Any, idle_seconds: float = 1.0, wary_seconds: float = 10.0,
                 ask_every: float = ASK_EVERY_SECONDS, **kwargs: Any) -> None:
        """psycopg_pool's arguments; `check` is this pool's own."""
        kwargs.setdefault("reconnect_timeout", RECONNECT_SECONDS)
        super().__init__(*args, check=self._check_if_needed, **kwargs)
        self.idle_seconds, self.wary_seconds, self.ask_every = (idle_seconds, wary_seconds,
                                                                ask_every)
        self._returned: weakref.WeakKeyDictionary[Connection[DictRow], float] = (
            weakref.WeakKeyDictionary())
        self._wary_until = 0.0
        self.checks = self.skipped_checks = 0

    def getconn(self, timeout: float | None = None) -> Connection[DictRow]:
        """psycopg_pool's `getconn`, asking again every `ask_every` seconds until `timeout`.

        Each new request of an empty pool starts a connection attempt unless one
        is under way, so a wait outlives an attempt that gave up during an outage.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return super().getconn(timeout=max(min(left, self.ask_every), 0.001))
            except PoolTimeout:
                if time.monotonic() >= deadline - 0.001:
                    raise pool_timeout(self.get_stats(), timeout, env_var(
                        "pool_max_size")) from None

    def putconn(self, conn: Connection[DictRow]) -> None:
        """Note when the connection came back, and whether it came back broken."""
        now = time.monotonic()
        if conn.broken or conn.closed:
            self._wary_until = now + self.wary_seconds
        else:
            self._returned[conn] = now
        super().putconn(conn)

    def _check_if_needed(self, conn: Connection[DictRow]) -> None:
        returned = self._returned.pop(conn, None)
        now = time.monotonic()
        if (returned is not None and now - returned < self.idle_seconds
                and now >= self._wary_until and not _server_spoke(conn)):
            self.skipped_checks += 1
            return
        self.checks += 1
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            self._wary_until = time.monotonic() + self.wary_seconds
            raise


def _server_spoke(conn: Connection[Any]) -> bool:
    """Whether the server wrote to an idle connection (a FATAL notice, EOF, a NOTIFY)."""
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True
    return bool(readable)


def open_pool(url: str, *, max_size: int = 10, timeout: float = 10.0, min_size: int = 1,
              wait_seconds: float = 30.0, pooled: bool = False) -> Pool:
    """Open a pool once the server answers (`timeout`); a request waits `wait_seconds`."""
    check_connection(url, options=connection_kwargs(pooled).get("options"))
    pool: Pool = CheckedPool(url, min_size=min(min_size, max_size), max_size=max_size,
                             timeout=wait_seconds, kwargs=connection_kwargs(pooled),
                             connection_class=Connection[DictRow], open=False, name="dealflow")
    try:
        pool.open(wait=True, timeout=timeout)
    except Exception as exc:
        pool.close()
        raise DatabaseUnavailable(
            f"cannot connect to Postgres at {redact_url(url)}: {exc}") from exc
    return pool


def fetch_all(pool: Pool, query: str, params: Any = None) -> list[DictRow]:
    """The rows of one statement (a read, or a write that returns rows) on a pool connection."""
    with pool.connection() as conn:
        return conn.execute(query, params).fetchall()


def shared_pool(url: str, **options: Any) -> Pool:
    """A process-wide pool per URL, for code that has no pool handed to it (`open_pool`'s)."""
    with _shared_lock:
        pool = _shared.get(url)
        if pool is None or pool.closed:
            pool = open_pool(url, **options)
            _shared[url] = pool
        return pool


def close_shared_pools() -> None:
    """Close every pool opened by `shared_pool` (tests, process exit)."""
    with _shared_lock:
        for pool in _shared.values():
            pool.close()
        _shared.clear()


def redact_url(url: str) -> str:
    """Hide the password in a Postgres URL for messages."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
