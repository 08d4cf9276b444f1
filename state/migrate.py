"""Numbered SQL migrations for dealflow's own tables, applied once each.

Files in `state/migrations/` are named `NNNN_description.sql`. `apply_migrations`
runs the missing ones in order, each in its own transaction, on a connection
that holds the migration lock (`state.checkpointer.setup_database` takes it).
`apply_functions` then (re)creates the functions of `state/functions.sql`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import psycopg

MIGRATION_LOCK = 0x6465616C  # "deal": the advisory lock held while the schema changes
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available_migrations() -> list[tuple[int, str, str]]:
    """Return `(version, name, sql)` for every migration file, in order."""
    found = sorted((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8"))
                   for entry in resources.files("state.migrations").iterdir()
                   if (match := _NAME.match(entry.name)))
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {versions}")
    return found


@contextmanager
def migration_lock(conn: psycopg.Connection[Any], seconds: float = 300) -> Iterator[None]:
    """Hold the migration lock on `conn`, taken by polling, never inside a waiting statement.

    A waiter blocked in `pg_advisory_lock` holds a snapshot, and the holder's
    `CREATE INDEX CONCURRENTLY` (in the checkpointer's setup) waits for every
    such snapshot: Postgres would report a deadlock. A try that returns at once
    holds nothing.
    """
    deadline = time.monotonic() + seconds
    while not conn.execute("SELECT pg_try_advisory_lock(%s) AS got",
                           (MIGRATION_LOCK,)).fetchone()["got"]:  # type: ignore[index]
        if time.monotonic() > deadline:
            raise TimeoutError(f"another process held the migration lock for {seconds:g}s")
        time.sleep(0.1)
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def apply_migrations(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the migrations this database lacks on `conn`; return the names applied."""
    applied_now: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS dealflow_migrations ("
                     " version integer PRIMARY KEY, name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())")
        done = {row["version"] for row in conn.execute("SELECT version FROM dealflow_migrations")}
        for version, name, sql in available_migrations():
            if version in done:
                continue
            with conn.transaction():
                conn.execute(sql.encode(), prepare=False)
                conn.execute("INSERT INTO dealflow_migrations (version, name) VALUES (%s, %s)",
                             (version, name))
            applied_now.append(name)
    return applied_now


def apply_functions(conn: psycopg.Connection[Any]) -> None:
    """(Re)create the functions of `state/functions.sql` (`CREATE OR REPLACE`), in one go."""
    sql = resources.files("state").joinpath("functions.sql").read_text(encoding="utf-8")
    with conn.transaction():
        conn.execute(sql.encode(), prepare=False)
