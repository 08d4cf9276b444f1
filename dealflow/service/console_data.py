"""What the operations console shows: every deal (filtered, paged), and one deal in full.

The list is one static statement on the registry, newest deal first, a page at a
time (a keyset cursor: the last row's start time and id), with the filters an
operator needs: status, overdue (a deadline past due that has not fired), failed
(a step failed after its retries, or the thread failed), the client (a
substring, any case) and the day the deal started (from, to: both included).
A deal's page reads what the CLI reads: status, facts, records, trace, waits
and deadlines, audit and history, from `DealService`, and which of the
console's actions fit the deal now.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dealflow.api import DealService
from dealflow.console_actions import STUCK
from dealflow.console_cancel import CANCELLABLE
from dealflow.errors import InvalidInput, NotFound
from dealflow.reports import DealReport, starting_report
from dealflow.service.review_view import deadline_lines, money, timeline_bars, why
from dealflow.timeline import trace_json
from graph.nodes import SUPERVISOR
from graph.review import RETRY_ACTION
from state.database import fetch_all
from state.leases import thread_is_held
from state.models import STATUSES

PAGE_SIZE = 50
_DEALS = """
SELECT d.deal_id, d.thread_id, d.client, d.value, d.currency, d.status, d.created_at,
       d.updated_at, o.overdue, f.failed
FROM dealflow_deals d
CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM dealflow_deadlines x
    WHERE x.thread_id = d.thread_id AND x.status = 'scheduled'
      AND x.due_at < clock_timestamp()) AS overdue) o
CROSS JOIN LATERAL (SELECT d.status = 'failed' OR EXISTS (SELECT 1 FROM dealflow_audit a
    WHERE a.deal_id = d.deal_id AND a.action = 'step.failed') AS failed) f
WHERE (%(status)s::text IS NULL OR d.status = %(status)s)
  AND (NOT %(overdue)s OR o.overdue) AND (NOT %(failed)s OR f.failed)
  AND (%(client)s::text IS NULL OR strpos(lower(d.client), lower(%(client)s)) > 0)
  AND (%(since)s::timestamptz IS NULL OR d.created_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR d.created_at < %(until)s)
  AND (%(after_at)s::timestamptz IS NULL
       OR (d.created_at, d.deal_id) < (%(after_at)s, %(after_id)s))
ORDER BY d.created_at DESC, d.deal_id DESC
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class Filters:
    """The list's filters as the form sent them (blank: not filtered)."""

    status: str = ""
    overdue: bool = False
    failed: bool = False
    client: str = ""
    started_from: str = ""
    started_to: str = ""

    def query(self) -> dict[str, str]:
        """The filters as URL parameters (for the next page's link)."""
        found = {"status": self.status, "overdue": "1" if self.overdue else "",
                 "failed": "1" if self.failed else "", "client": self.client,
                 "from": self.started_from, "to": self.started_to}
        return {name: value for name, value in found.items() if value}


def deals_page(service: DealService, filters: Filters, cursor: str | None = None,
               limit: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], str | None]:
    """One page of deals, newest first, and the cursor of the next page (None at the end).

    `InvalidInput` names a filter that cannot be read (a status, a date, the cursor).
    """
    if filters.status and filters.status not in STATUSES:
        raise InvalidInput(f"status: one of {', '.join(STATUSES)}")
    since = _day(filters.started_from, "from")
    until = _day(filters.started_to, "to")
    after_at, after_id = _decode(cursor) if cursor else (None, None)
    rows = fetch_all(service.pool, _DEALS, {
        "status": filters.status or None, "overdue": filters.overdue, "failed": filters.failed,
        "client": filters.client.strip()[:200] or None, "since": since,
        "until": until + timedelta(days=1) if until else None,
        "after_at": after_at, "after_id": after_id, "limit": limit + 1})
    shown = [{**row, "value": money(row["value"], row["currency"])} for row in rows[:limit]]
    more = len(rows) > limit and shown
    return shown, _encode(shown[-1]["created_at"], shown[-1]["deal_id"]) if more else None


def _day(text: str, name: str) -> datetime | None:
    """The start (UTC) of the day `text` names (`2026-12-03`), or None if blank."""
    if not text.strip():
        return None
    try:
        return datetime.combine(date.fromisoformat(text.strip()), time(), UTC)
    except ValueError:
        raise InvalidInput(f"{name}: a date as YYYY-MM-DD, got {text.strip()!r:.40}") from None


def _encode(at: datetime, deal_id: str) -> str:
    raw = json.dumps([at.isoformat(), deal_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        at, deal_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(deal_id)
    except (ValueError, TypeError):
        raise InvalidInput("cursor: not one of this list's; start from the first page") \
            from None


def deal_page(service: DealService, deal_id: str) -> dict[str, Any]:
    """Everything a deal's console page shows (NotFound for an unknown deal)."""
    row = service.deal(deal_id)
    try:
        report = service.status(row.thread_id)
    except NotFound:
        report = starting_report(row, "queued: a worker starts it shortly")
    _, spans = service.trace(row.thread_id)
    timers = service.timers(row.thread_id)
    deal = report.context.get("deal") or row.input
    history = list(reversed(service.history(row.thread_id)))  # newest first
    forkable = [c for c in history if c["next"] == [SUPERVISOR] and c["completed_steps"]]
    driven = thread_is_held(service.pool, row.thread_id)
    return {
        "row": row, "report": report, "deal": deal,
        "value": money(deal["value"], deal["currency"]),
        "facts": [(key, _text(value)) for key, value in sorted(service.facts(row.deal_id).items())],
        "records": _records(service, row.deal_id),
        "bars": timeline_bars(trace_json(row.deal_id, row.thread_id, spans, timers)["spans"]),
        "waits": _waits(service, row.thread_id),
        "deadlines": deadline_lines(report.deadlines, datetime.now(UTC)),
        "audit_rows": [{"at": e.at, "who": e.actor or e.agent, "what": e.action, "why": why(e)}
                       for e in service.audit(row.deal_id)],
        "checkpoints": history, "forkable": forkable,
        "failures": report.context.get("failures") or [],
        "terms": {"value": deal["value"], "payment_terms_days": deal.get("payment_terms_days")
                  or service.settings.payment_terms_days},
        "actions": actions_for(report, driven, bool(forkable)),
        "driven": driven,
    }


def actions_for(report: DealReport, driven: bool, forkable: bool) -> dict[str, bool]:
    """Which of the console's actions fit the deal now."""
    requests = (report.pending or {}).get("action_requests") or [{}]
    return {
        "retry": report.status == "waiting_review" and requests[0].get("name") == RETRY_ACTION,
        "cancel": report.status in CANCELLABLE and not driven,
        "recover": report.status in STUCK and not driven,
        "fork": forkable and not driven,
    }


def _records(service: DealService, deal_id: str) -> list[dict[str, Any]]:
    """Each system's records: the record's id, branch and status, and all of it as text."""
    ids = service.systems.record_ids()
    return [{"label": label, "rows": [
        {"id": str(record.get(ids.get(label, ""), "")), "branch": record.get("branch"),
         "status": record.get("status"), "text": _text(record)} for record in records]}
        for label, records in service.records(deal_id).items()]


def _waits(service: DealService, thread_id: str) -> list[dict[str, Any]]:
    """Each wait of the thread, oldest first, with how it ended and its deadlines."""
    deadlines = service.data.deadlines.for_thread(thread_id)
    return [{"wait": w.wait, "node": w.node, "opened_at": w.opened_at,
             "resolved_at": w.resolved_at, "resolved_by": w.resolved_by,
             "resolution": _text(w.resolution) if w.resolution else "",
             "deadlines": [d for d in deadlines if d.wait_key == w.wait_key]}
            for w in service.data.waits.for_thread(thread_id)]


def _text(value: Any) -> str:
    """A value as indented JSON text (dates and amounts as strings)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
