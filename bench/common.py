"""Shared bench helpers: a throwaway database, timers, statement counting."""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import Cursor
from psycopg.conninfo import make_conninfo

from state import database
from state.embedded import embedded_database_url


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh database on TEST_DATABASE_URL's server (else the embedded one), dropped after."""
    admin = os.environ.get("TEST_DATABASE_URL") or embedded_database_url(
        Path(tempfile.mkdtemp(prefix="dfbench-", dir="/tmp")))
    name = f"dfbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(admin, dbname=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall seconds of each of `repeat` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def median(values: list[float]) -> float:
    """The median."""
    return statistics.median(values)


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


class CountingCursor(Cursor[Any]):
    """A cursor that counts the statements sent through it (all connections of a pool)."""

    statements = 0
    _lock = threading.Lock()

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Count, then execute."""
        with CountingCursor._lock:
            CountingCursor.statements += 1
        return super().execute(*args, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> Any:
        """Count each parameter set, then execute."""
        params_seq = list(params_seq)
        with CountingCursor._lock:
            CountingCursor.statements += len(params_seq)
        return super().executemany(query, params_seq, **kwargs)


def commits(url: str) -> int:
    """Transactions committed in the database so far (pg_stat_database)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database"
                           " WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def transaction_ids(url: str) -> int:
    """The server's next transaction id: it moves once per transaction that wrote.

    A read-only transaction gets no id and writes no commit record (nothing to
    flush to disk), so the difference of two readings counts the commits that
    cost a WAL flush, on the whole server (keep it otherwise idle).
    """
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
                           ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def counted_statements() -> Iterator[None]:
    """Pools opened inside the block count their statements in `CountingCursor.statements`."""
    database.CONNECTION_KWARGS["cursor_factory"] = CountingCursor
    try:
        yield
    finally:
        del database.CONNECTION_KWARGS["cursor_factory"]
