"""A system connector that is NOT idempotent and counts every real call.

Load it with `DEALFLOW_SYSTEMS=tests.integration.counting:counting_systems`.
Each call is committed to `counting_calls` before the system acts, so a process
killed right after the call still leaves its trace; the effect ledger is what
must keep the count at one per effect.
"""

from __future__ import annotations

from typing import Any

from agents.systems import Systems
from agents.systems.faults import FaultInjector
from agents.systems.sandbox import sandbox_systems
from state.config import Settings
from state.database import Pool

SCHEMA = ("CREATE TABLE IF NOT EXISTS counting_calls (id bigserial PRIMARY KEY,"
          " system text NOT NULL, method text NOT NULL, key text NOT NULL,"
          " made_at timestamptz NOT NULL DEFAULT clock_timestamp())")


class _Counting:
    def __init__(self, inner: Any, system: str, method: str, pool: Pool) -> None:
        self._inner, self._system, self._method, self._pool = inner, system, method, pool

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._pool.connection() as conn:
                conn.execute("INSERT INTO counting_calls (system, method, key) VALUES (%s,%s,%s)",
                             (self._system, name, kwargs.get("key", "")))
            return attr(*args, **kwargs)

        return counted


def counting_systems(pool: Pool, settings: Settings) -> Systems:
    """The sandbox behind counters; lookups go to the sandbox's records."""
    with pool.connection() as conn:
        conn.execute(SCHEMA)
    inner = sandbox_systems(pool, FaultInjector(settings.sandbox_outage,
                                                settings.sandbox_latency_ms))
    return Systems(
        crm=_Counting(inner.crm, "crm", "record_qualification", pool),  # type: ignore[arg-type]
        pm=_Counting(inner.pm, "pm", "create_project", pool),  # type: ignore[arg-type]
        contracts=_Counting(inner.contracts, "contracts", "store_contract",  # type: ignore[arg-type]
                            pool),
        esign=_Counting(inner.esign, "esign", "send_envelope", pool),  # type: ignore[arg-type]
        billing=_Counting(inner.billing, "billing", "issue_invoice", pool),  # type: ignore[arg-type]
    )


def call_counts(pool: Pool, deal_id: str) -> dict[str, int]:
    """Real calls per system for one deal."""
    with pool.connection() as conn:
        conn.execute(SCHEMA)
        rows = conn.execute(
            "SELECT system, count(*) AS n FROM counting_calls WHERE key LIKE %s GROUP BY system",
            (f"{deal_id}:%",)).fetchall()
    return {row["system"]: row["n"] for row in rows}
