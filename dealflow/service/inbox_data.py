"""What the inbox shows: the pending reviews, and everything one review needs.

Read from `DealService` (the same queries as the CLI and the API), so a review
decided anywhere (CLI, API, MCP, another reviewer) leaves the list at once.
What a deal's page shows of its steps and waits comes from the workflow's
declarations: each done step with its summary and facts, and the event a
deal waits for (its events, its handle and its deadlines).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dealflow.api import DealService
from dealflow.deadlines import refusal
from dealflow.errors import InvalidInput, NotFound
from dealflow.render import waiting_line, who
from dealflow.reports import DealReport, deal_state_of, has_run
from dealflow.service.review_view import deadline_lines, headline, money, timeline_bars, why
from dealflow.timeline import render_trace, trace_json
from graph.nodes import HUMAN_REVIEW
from graph.review import ALLOWED, APPROVE_ACTION, ESCALATION_ACTION, RETRY_ACTION
from graph.review_edit import EDITABLE, edit_answer
from state.models import ReviewKind
from state.numerals import whole_number

KINDS: dict[str, ReviewKind] = {APPROVE_ACTION: "approval", RETRY_ACTION: "failure",
                                ESCALATION_ACTION: "escalation"}
LABELS = {"approve": "Approve", "reject": "Reject", "retry": "Retry"}


@dataclass(frozen=True)
class PendingReview:
    """One line of the inbox."""

    deal_id: str
    client: str
    value: str
    currency: str
    kind: ReviewKind
    why: str
    since: datetime | None
    deadline: dict[str, Any] | None


def pending_reviews(service: DealService, kind: str | None = None) -> list[PendingReview]:
    """Every review waiting for a person, newest first (of one kind, if given)."""
    found = []
    for row, _ in service.threads("waiting_review"):
        try:
            report = service.status(row.thread_id)
        except NotFound:
            continue
        request = (report.pending or {}).get("action_requests") or [{}]
        review_kind = KINDS.get(request[0].get("name", ""), "approval")
        if report.status != "waiting_review" or (kind and review_kind != kind):
            continue
        wait = service.data.waits.open_wait(row.thread_id)
        found.append(PendingReview(
            deal_id=row.deal_id, client=row.client, value=f"{row.value:,.2f}",
            currency=row.currency, kind=review_kind,
            why=str(request[0].get("description", "")), since=wait.opened_at if wait else None,
            deadline=report.deadlines[-1] if report.deadlines else None))
    found.sort(key=lambda r: r.since.timestamp() if r.since else 0.0, reverse=True)
    return found


def review_page(service: DealService, deal_id: str) -> dict[str, Any]:
    """Everything one review page shows (NotFound for an unknown deal)."""
    report = service.status(deal_id)
    context = report.context
    request = (report.pending or {}).get("action_requests") or [{}]
    waiting = report.status == "waiting_review"
    kind = KINDS.get(request[0].get("name", ""), "approval") if waiting else None
    contracts = service.records(deal_id).get("contracts", [])
    ended = service.data.waits.last_ended(report.thread_id,
                                          service.workflow.wait_name(HUMAN_REVIEW))
    row, spans = service.trace(deal_id)
    deal = context.get("deal") or {}
    description = request[0].get("description", "") if waiting else ""
    now = datetime.now(UTC)
    return {
        "report": report, "waiting": waiting, "kind": kind,
        "why": headline(kind, deal, description, service.settings.review_threshold_usd)
        if waiting else "",
        "deadlines": deadline_lines(report.deadlines, now),
        "value": money(deal["value"], deal["currency"]) if deal else "",
        "bars": timeline_bars(trace_json(row.deal_id, row.thread_id, spans,
                                         service.timers(row.thread_id))["spans"]),
        "audit_rows": [{"at": e.at, "who": e.actor or e.agent, "what": e.action,
                        "why": why(e)} for e in service.audit(deal_id)],
        "decisions": [(d, LABELS[d]) for d in ALLOWED[kind]] if kind else [],
        "editable": {name: request[0]["args"][name] for name in EDITABLE}
        if kind == "approval" else {},
        "deal": deal, "steps": steps_done(service, report),
        "waiting_for": waiting_line(report, service.workflow),
        "failures": context.get("failures") or [],
        "contract": contracts[-1] if contracts else None,
        "trace": render_trace(row.deal_id, row.thread_id, spans, service.workflow,
                              service.timers(row.thread_id)),
        "ended": refusal(report.thread_id, ended).split(": ", 1)[-1]
        if ended and not waiting else None,
    }


def steps_done(service: DealService, report: DealReport) -> list[dict[str, Any]]:
    """Each declared step the deal has done: who, its summary, and its facts as JSON text."""
    snapshot = service.snapshot(report.thread_id)
    if not has_run(snapshot):
        return []
    state = deal_state_of(snapshot, service.workflow)
    done = []
    for spec in service.workflow.steps:
        output = getattr(state, spec.output, None)
        if output is not None:
            facts = report.context.get(spec.output)
            done.append({"step": spec.name, "who": who(spec.name, service.workflow),
                         "summary": spec.describe(output),
                         "facts": json.dumps(facts, indent=2, ensure_ascii=False)})
    return done


def form_edit(service: DealService, deal_id: str, typed: dict[str, str], comment: str,
              reviewer: str) -> dict[str, Any]:
    """The HITL edit answer for the terms typed in the review page's form."""
    pending = service.status(deal_id).pending
    if not pending:
        raise InvalidInput(f"deal {deal_id!r:.80} has no pending review to edit")
    action = pending["action_requests"][0]
    shown = dict(action["args"])
    changes: dict[str, Any] = {}
    for name, raw in typed.items():
        if raw.strip() and str(shown.get(name)) != raw.strip():
            try:
                changes[name] = whole_number(raw) if isinstance(shown.get(name), int) \
                    else raw.strip()
            except ValueError as exc:
                raise InvalidInput(f"{name}: {exc}") from None
    return edit_answer(shown, changes, action=action["name"], comment=comment,
                       reviewer=reviewer)
