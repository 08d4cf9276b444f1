"""What the MCP server offers, as plain functions over `DealService`.

Kept apart from the MCP wiring (`dealflow.mcp_server`) so the same logic can
be tested and reused; every error is a `DealflowError` with a clear message.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import TypeAdapter, ValidationError

from dealflow.api import DealService
from dealflow.errors import InvalidInput, NotFound
from dealflow.views import thread_json
from state.models import STATUSES, Comment

MAX_ID = 200


def _ref(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string")
    if len(value) > MAX_ID:
        raise NotFound(f"no {what.replace('_', ' ')} {value[:40]!r}… ({len(value)} characters)")
    return value


def _comment(text: str) -> str:
    """A review comment as the review accepts it (no control characters, 2000 characters)."""
    try:
        return str(TypeAdapter(Comment).validate_python(text))
    except ValidationError as exc:
        raise InvalidInput(f"comment: {exc.errors()[0]['msg']}") from None


def _label(text: str) -> str:
    """The client's self-reported name, printable, for the audit detail only."""
    return "".join(ch for ch in text if ch.isprintable())[:100]


class DealTools:
    """Read a deal's context and act on pending reviews, for any MCP client."""

    def __init__(self, service: DealService) -> None:
        """Serve from `service`."""
        self.service = service

    def deal_context(self, deal_id: str, include_history: bool = False) -> dict[str, Any]:
        """The deal's facts as the agents see them, and optionally its events in order.

        Each declared step's output is listed under its name, as the step shows it
        (`StepSpec.shown`: the signature as its event, or `not signed`).
        """
        report = self.service.status(_ref(deal_id, "deal_id"))
        facts = report.context
        invoice = facts.get("invoice")
        data: dict[str, Any] = {
            "deal_id": report.deal_id, "thread_id": report.thread_id,
            "client": facts["deal"]["client"], "value": facts["deal"]["value"],
            "currency": facts["deal"]["currency"], "deal_type": facts["deal"]["deal_type"],
            "stage": report.status, "completed_steps": report.completed_steps,
            **{spec.output: spec.shown(facts.get(spec.output))
               for spec in self.service.workflow.steps},
            "payment_status": f"invoiced, due {invoice['due_on']}" if invoice else "not invoiced",
            "pending": report.pending,
            "shared_context": self.service.facts(report.deal_id),
        }
        if include_history:
            data["history"] = [
                {"at": e.at.isoformat(), "agent": e.agent, "step": e.step, "action": e.action,
                 "key": e.key, "actor": e.actor, "reason": e.reason}
                for e in self.service.audit(report.deal_id)]
        return data

    def list_deals(self, status: str | None = None) -> list[dict[str, Any]]:
        """Deals with their thread and status, newest first."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"unknown status {status[:40]!r}; one of: {', '.join(STATUSES)}")
        return [thread_json(row, active) for row, active in self.service.threads(status)]

    def pending_reviews(self) -> list[dict[str, Any]]:
        """Threads waiting for a person, with the review request (HITL shape) and deadlines."""
        reviews = []
        for row, _ in self.service.threads("waiting_review"):
            report = self.service.status(row.thread_id)
            if report.pending:
                reviews.append({"thread_id": row.thread_id, "deal_id": row.deal_id,
                                "client": row.client, "request": report.pending,
                                "deadlines": report.deadlines})
        return reviews

    def audit_trail(self, deal_id: str) -> list[dict[str, Any]]:
        """The deal's audit trail in order."""
        return [{**asdict(e), "at": e.at.isoformat()}
                for e in self.service.audit(_ref(deal_id, "deal_id"))]

    def submit_review(self, thread_id: str, decision: str, comment: str, caller: str,
                      label: str = "") -> dict[str, Any]:
        """Answer a pending review as `caller` (authenticated; `label`: the client's name)."""
        comment = _comment(comment)
        row = self.service.audited_call(_ref(thread_id, "thread_id"), caller,
                                        "mcp.submit_review",
                                        {"decision": decision, "comment": comment[:500],
                                         "client": _label(label)})
        report = self.service.resume(row.thread_id, {"decision": decision,
                                                     "comment": comment,
                                                     "reviewer": caller[:200]})
        return report.model_dump(mode="json", include={"thread_id", "deal_id", "status",
                                                       "completed_steps", "pending"})

    def record_signature_event(self, thread_id: str, event: str, caller: str,
                               label: str = "") -> dict[str, Any]:
        """Deliver a signature event as `caller` (authenticated; `label`: the client's name)."""
        row = self.service.audited_call(_ref(thread_id, "thread_id"), caller,
                                        "mcp.signature_event",
                                        {"event": event[:100], "client": _label(label)})
        report = self.service.event(row.thread_id, event)
        return report.model_dump(mode="json", include={"thread_id", "deal_id", "status",
                                                       "completed_steps", "pending"})

    def contract_text(self, deal_id: str) -> str:
        """The stored contract text of a deal."""
        contracts = self.service.records(_ref(deal_id, "deal_id"))["contracts"]
        if not contracts:
            raise NotFound(f"deal {deal_id!r} has no contract yet")
        return str(contracts[0]["body"])
