"""Local spans: what each node attempt did and how long it took, kept in Postgres.

Written by the span recorder (a LangChain callback handler, `graph.observe`);
read by `dealflow trace` (one deal's timeline) and `dealflow stats` (where
failures and time cluster across deals).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from state.database import Pool, fetch_all
from state.pending import FLUSH
from state.rows import COLUMNS, Rows, flush_params
from state.work import StepWork


@dataclass(frozen=True)
class Span:
    """One node attempt."""

    deal_id: str
    thread_id: str
    node: str
    agent: str
    system: str | None
    task: str | None
    attempt: int
    started_at: datetime
    duration_ms: float
    status: str
    error: str | None = None
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class SpanStore:
    """Reads and writes `dealflow_spans`."""

    def __init__(self, pool: Pool) -> None:
        """Use `pool`."""
        self._pool = pool

    def record(self, span: Span, work: StepWork | None = None) -> None:
        """Append one span: into the step's unit of work (`work`), else at once."""
        row = tuple(getattr(span, c) for c in COLUMNS["spans"])  # `Span`'s fields, in order
        if work is not None:
            work.rows.spans.append(row)
            return
        with self._pool.connection() as conn:
            conn.execute(FLUSH, flush_params(Rows(spans=[row]), None, None))

    def for_thread(self, thread_id: str) -> list[Span]:
        """A thread's spans in start order."""
        rows = fetch_all(self._pool, f"SELECT {', '.join(COLUMNS['spans'])} FROM dealflow_spans"
                         " WHERE thread_id = %s ORDER BY started_at, id", (thread_id,))
        return [Span(**row) for row in rows]

    def step_stats(self, since: timedelta | None = None) -> list[dict[str, Any]]:
        """Per node: attempts, median and p95 duration of successes, failures, retries."""
        return [dict(row) for row in fetch_all(
            self._pool, "SELECT node, agent, max(system) AS system, count(*) AS attempts,"
            " count(*) FILTER (WHERE status = 'ok') AS ok,"
            " count(*) FILTER (WHERE status = 'error') AS failures,"
            " count(*) FILTER (WHERE attempt > 1) AS retries,"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)"
            "   FILTER (WHERE status = 'ok') AS median_ms,"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)"
            "   FILTER (WHERE status = 'ok') AS p95_ms"
            " FROM dealflow_spans"
            " WHERE %s::interval IS NULL OR started_at >= now() - %s::interval"
            " GROUP BY node, agent ORDER BY min(started_at)", (since, since))]

    def system_stats(self, since: timedelta | None = None) -> list[dict[str, Any]]:
        """Per system of record: attempts, failures, retries."""
        return [dict(row) for row in fetch_all(
            self._pool, "SELECT system, count(*) AS attempts,"
            " count(*) FILTER (WHERE status = 'error') AS failures,"
            " count(*) FILTER (WHERE attempt > 1) AS retries"
            " FROM dealflow_spans WHERE system IS NOT NULL"
            " AND (%s::interval IS NULL OR started_at >= now() - %s::interval)"
            " GROUP BY system ORDER BY system", (since, since))]

    def deal_statuses(self, since: timedelta | None = None) -> dict[str, int]:
        """Deals by status (from the registry), updated within `since`."""
        rows = fetch_all(
            self._pool, "SELECT status, count(*) AS n FROM dealflow_deals"
            " WHERE %s::interval IS NULL OR updated_at >= now() - %s::interval"
            " GROUP BY status ORDER BY status", (since, since))
        return {row["status"]: row["n"] for row in rows}
