"""The deal registry: which thread runs each deal, its terms, and the status it last reached.

A deal id is claimed once (`INSERT ... ON CONFLICT DO NOTHING`), so starting the
same deal twice, even from two processes at once, yields one thread. The graph
itself keeps its row current (`record`): every supervisor visit writes the
thread's terms and status, whichever way the graph is driven.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from psycopg.types.json import Json, Jsonb

from state.database import Pool, fetch_all
from state.models import DealInput
from state.pending import FLUSH
from state.rows import Rows, flush_params
from state.transactions import write_connection
from state.work import StepWork


@dataclass(frozen=True)
class DealRow:
    """One registered deal."""

    deal_id: str
    thread_id: str
    client: str
    value: Decimal
    currency: str
    input: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


DEAL_THREADS = UUID("6c0f3b52-6d1e-5a43-9d1b-2f7c1e0a8d11")
"""The namespace of deal thread ids (uuid5), fixed forever: changing it orphans threads."""


def thread_id_for(deal_id: str) -> str:
    """The thread that runs a deal: one per deal id, always the same.

    A UUID (uuid5 of the deal id), because LangGraph Server accepts only UUID
    thread ids: a deal started by the CLI, the HTTP API or MCP can be opened
    with the LangGraph SDK (`threads.create(thread_id=..., graph_id="dealflow",
    if_exists="do_nothing")`). Threads that older versions named `deal-<id>`
    keep their names: the registry maps each deal to its thread.
    """
    return str(uuid5(DEAL_THREADS, deal_id))


# The status a run reached, and its report stamped with the thread's current stamp
# (state/functions.sql), kept only if the report was made at the latest checkpoint.
_STATUS_WITH_REPORT = """
WITH deal AS (UPDATE dealflow_deals SET status = %(status)s, updated_at = now()
              WHERE thread_id = %(thread)s RETURNING deal_id),
     stamp AS (SELECT dealflow_thread_stamp_v1(%(thread)s) AS stamp)
INSERT INTO dealflow_deal_reports (thread_id, deal_id, stamp, report)
SELECT %(thread)s, deal.deal_id, stamp.stamp, %(report)s FROM deal, stamp
WHERE starts_with(stamp.stamp, %(checkpoint)s || ':')
ON CONFLICT (thread_id) DO UPDATE
SET deal_id = EXCLUDED.deal_id, stamp = EXCLUDED.stamp, report = EXCLUDED.report
"""
# The deal `find` finds, and its recorded report while its stamp is the thread's current one.
_RECORDED_REPORT = """
WITH deal AS (SELECT thread_id FROM dealflow_deals
              WHERE thread_id = %(ref)s OR deal_id = %(ref)s
              ORDER BY (thread_id = %(ref)s) DESC LIMIT 1)
SELECT r.report FROM deal JOIN dealflow_deal_reports AS r USING (thread_id)
WHERE r.stamp = dealflow_thread_stamp_v1(deal.thread_id)
"""


class DealRegistry:
    """Reads and writes `dealflow_deals`."""

    def __init__(self, pool: Pool) -> None:
        """Use `pool` for every query."""
        self._pool = pool

    def claim(self, deal: DealInput, thread_id: str) -> tuple[DealRow, bool]:
        """Register the deal if new; return its row and whether this call created it."""
        created = fetch_all(
            self._pool, "INSERT INTO dealflow_deals (deal_id, thread_id, client, value, currency,"
            " input, status) VALUES (%s, %s, %s, %s, %s, %s, 'running')"
            " ON CONFLICT (deal_id) DO NOTHING RETURNING *",
            (deal.deal_id, thread_id, deal.client, deal.value, deal.currency,
             Jsonb(deal.model_dump(mode="json"))))
        row = DealRow(**created[0]) if created else self.find(deal.deal_id)
        assert row is not None
        return row, bool(created)

    def record(self, deal: DealInput, thread_id: str, status: str,
               work: StepWork | None = None) -> None:
        """Register the deal for `thread_id` or bring its row up to date (terms, status).

        With `work`, the row goes into the step's unit of work, written with the
        step's checkpoint. The database refuses it when another thread runs this
        deal id (`DealOwnedElsewhere`): at once, or from the step's checkpoint,
        which is then not saved, and the run stops there.
        """
        row = (deal.deal_id, thread_id, deal.client, deal.value, deal.currency,
               Jsonb(deal.model_dump(mode="json")), status)
        if work is not None:
            work.rows.deals.append(row)
            return
        with write_connection(self._pool) as conn:
            conn.execute(FLUSH, flush_params(Rows(deals=[row]), None, None))

    def find(self, ref: str) -> DealRow | None:
        """The deal whose deal id or thread id is `ref`."""
        rows = fetch_all(self._pool, "SELECT * FROM dealflow_deals"
                         " WHERE thread_id = %s OR deal_id = %s"
                         " ORDER BY (thread_id = %s) DESC LIMIT 1", (ref, ref, ref))
        return DealRow(**rows[0]) if rows else None

    def set_status(self, thread_id: str, status: str) -> None:
        """Remember the status a thread reached."""
        with self._pool.connection() as conn:
            conn.execute("UPDATE dealflow_deals SET status = %s, updated_at = now()"
                         " WHERE thread_id = %s", (status, thread_id))

    def set_status_with_report(self, thread_id: str, status: str, checkpoint_id: str,
                               report: dict[str, Any]) -> None:
        """Remember the status a thread reached and its report, made at `checkpoint_id`.

        The report is kept under the thread's stamp, if `checkpoint_id` is still its
        latest checkpoint; `recorded_report` serves it while that stamp holds.
        """
        with self._pool.connection() as conn:
            conn.execute(_STATUS_WITH_REPORT, {"thread": thread_id, "status": status,
                                               "checkpoint": checkpoint_id,
                                               "report": Json(report)})

    def recorded_report(self, ref: str) -> dict[str, Any] | None:
        """The report recorded for the deal or thread `ref`, if nothing wrote to it since."""
        rows = fetch_all(self._pool, _RECORDED_REPORT, {"ref": ref})
        return rows[0]["report"] if rows else None

    def page(self, statuses: Sequence[str] = (), limit: int = 100,
             cursor: str | None = None, *, overdue: bool = False
             ) -> tuple[list[DealRow], str | None]:
        """Deals, most recently updated first: one page, and the cursor of the next (or None).

        `overdue`: only deals with a deadline past due that has not fired.
        """
        after_at, after_id = decode_cursor(cursor) if cursor else (None, None)
        wanted = list(statuses)
        rows = fetch_all(
            self._pool, "SELECT * FROM dealflow_deals WHERE (cardinality(%s::text[]) = 0"
            " OR status = ANY(%s::text[])) AND (%s::timestamptz IS NULL"
            " OR (updated_at, deal_id) < (%s::timestamptz, %s::text))"
            " AND (NOT %s OR EXISTS (SELECT 1 FROM dealflow_deadlines d WHERE"
            " d.thread_id = dealflow_deals.thread_id AND d.status = 'scheduled'"
            " AND d.due_at < clock_timestamp()))"
            " ORDER BY updated_at DESC, deal_id DESC LIMIT %s",
            (wanted, wanted, after_at, after_at, after_id, overdue, limit + 1))
        found = [DealRow(**row) for row in rows[:limit]]
        more = len(rows) > limit
        return found, encode_cursor(found[-1]) if more and found else None

    def list(self, status: str | None = None, statuses: Sequence[str] = (),
             page_size: int = 500) -> list[DealRow]:
        """Every deal (in `status` or `statuses`, if given), most recently updated first."""
        wanted = list(statuses or ((status,) if status else ()))
        found: list[DealRow] = []
        cursor: str | None = None
        while True:
            rows, cursor = self.page(wanted, page_size, cursor)
            found.extend(rows)
            if cursor is None:
                return found


def encode_cursor(row: DealRow) -> str:
    """An opaque cursor pointing just after `row` in `page` order."""
    raw = json.dumps([row.updated_at.isoformat(), row.deal_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor points after; ValueError if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, deal_id = json.loads(raw)
        return datetime.fromisoformat(at), str(deal_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a threads cursor: {cursor!r:.40}") from exc
