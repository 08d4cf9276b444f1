"""Systems of record that count every request they serve.

Load them with `DEALFLOW_SYSTEMS=tests.integration.counting:counting_systems`.
Each served request is logged in the statement (or transaction) that serves it, so a
request counts if and only if it took effect, whenever the caller is killed.
The sandbox behind them would absorb a repeated request; the count does not:
a second request for the same effect shows as 2. Keeping it at 1 is the effect
ledger's job.
"""

from __future__ import annotations

from agents.systems import Systems
from agents.systems.faults import FaultInjector
from agents.systems.sandbox import sandbox_systems
from state.config import Settings
from state.database import Pool

SCHEMA = ("CREATE TABLE IF NOT EXISTS counting_calls (id bigserial PRIMARY KEY,"
          " system text NOT NULL, key text NOT NULL,"
          " made_at timestamptz NOT NULL DEFAULT clock_timestamp())")


def _log(system: str, key: str) -> tuple[str, tuple[str, str]]:
    return "INSERT INTO counting_calls (system, key) VALUES (%s, %s)", (system, key)


def counting_systems(pool: Pool, settings: Settings) -> Systems:
    """The sandbox systems, every served request counted."""
    with pool.connection() as conn:
        conn.execute(SCHEMA)
    faults = FaultInjector(settings.sandbox_outage, settings.sandbox_latency_ms)
    return sandbox_systems(pool, faults, log=_log)


def call_counts(pool: Pool, deal_id: str) -> dict[str, int]:
    """Requests served per system for one deal."""
    with pool.connection() as conn:
        conn.execute(SCHEMA)
        rows = conn.execute(
            "SELECT system, count(*) AS n FROM counting_calls WHERE key LIKE %s GROUP BY system",
            (f"{deal_id}:%",)).fetchall()
    return {row["system"]: row["n"] for row in rows}
