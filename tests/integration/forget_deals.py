"""What the forget tests look at: every row a deal has, in every table that names deals.

The tables are found in `information_schema` (every table of the public schema
with a `deal_id` or a `thread_id` column), not listed: a table a future
migration adds is looked at too, and the test that compares it with
`dealflow.prune_forget_sql.TABLES` fails until the forget covers it.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import sql

from dealflow.archive import read_forgotten
from state.database import Pool, fetch_all

TOMBSTONES = "dealflow_forgotten_deals"


def deal_tables(pool: Pool) -> dict[str, set[str]]:
    """Every table with a `deal_id` or `thread_id` column, and which of the two it has."""
    found: dict[str, set[str]] = {}
    for row in fetch_all(pool, "SELECT table_name, column_name FROM information_schema.columns"
                         " WHERE table_schema = 'public' AND column_name IN"
                         " ('deal_id', 'thread_id')"):
        found.setdefault(row["table_name"], set()).add(row["column_name"])
    return found


def rows_of(pool: Pool, deal_id: str, thread_id: str, *, sandbox: bool = False
            ) -> dict[str, list[str]]:
    """Each table's rows (JSON text, sorted) naming the deal or its thread.

    The dealflow and LangGraph tables, or with `sandbox` the systems' own; never the
    tombstones.
    """
    found: dict[str, list[str]] = {}
    for table, columns in deal_tables(pool).items():
        if table == TOMBSTONES or table.startswith("sandbox_") != sandbox:
            continue
        where = sql.SQL(" OR ").join(
            sql.SQL("{} = %(deal)s").format(sql.Identifier("t", "deal_id"))
            if column == "deal_id" else
            sql.SQL("{} = %(thread)s").format(sql.Identifier("t", "thread_id"))
            for column in sorted(columns))
        query = sql.SQL("SELECT to_jsonb(t) AS row FROM {} AS t WHERE {}").format(
            sql.Identifier(table), where)
        with pool.connection() as conn:
            rows = conn.execute(query, {"deal": deal_id, "thread": thread_id}).fetchall()
        if rows:
            found[table] = sorted(json.dumps(r["row"], sort_keys=True) for r in rows)
    return found


def archived_rows(path: str) -> dict[str, list[str]]:
    """An archive's rows as `rows_of` spells them (bytes left as Postgres's hex)."""
    archive = read_forgotten(path, bytea={})
    return {table: sorted(json.dumps(row, sort_keys=True) for row in rows)
            for table, rows in archive.tables.items()}


def without_prune_leases(archived: dict[str, list[str]], before: dict[str, list[str]]
                         ) -> dict[str, list[str]]:
    """`archived`, less a lease row the forget made for a thread that had none.

    A thread nobody leased gets an expired lease row in the forget's transaction
    (as a prune's), so that no fenced write can start meanwhile: it is archived too.
    """
    leases = archived.get("dealflow_leases", [])
    made = [row for row in leases if row not in before.get("dealflow_leases", [])]
    assert all(json.loads(row)["owner"] == "dealflow prune" for row in made), made
    kept = [row for row in leases if row not in made]
    return {table: (kept if table == "dealflow_leases" else rows)
            for table, rows in archived.items() if table != "dealflow_leases" or kept}


def tombstones(pool: Pool) -> dict[str, list[dict[str, Any]]]:
    """Thread → its tombstones, oldest first."""
    found: dict[str, list[dict[str, Any]]] = {}
    for row in fetch_all(pool, f"SELECT * FROM {TOMBSTONES} ORDER BY id"):
        found.setdefault(row["thread_id"], []).append(row)
    return found
