"""The `generate_invoice` node."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langgraph.runtime import Runtime

from agents.context import DealContext, step_run
from agents.finance.invoicing import draft_invoice
from state.deal_state import DealState
from state.models import Invoice

STEP = "generate_invoice"


def generate_invoice(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Invoice the deal once: qualified and with a project, per the shared context."""
    deal = state.deal
    run = step_run(runtime, deal.deal_id, "finance", STEP)
    run.require("qualified")
    project = run.require("project")
    draft = draft_invoice(deal, tax_rate=run.settings.tax_rate,
                          terms_days=run.settings.payment_terms_days,
                          issued_on=datetime.now(UTC).date())
    billing = run.systems.billing
    invoice = run.effect("billing.issue_invoice", Invoice,
                         lambda: billing.issue_invoice(deal.deal_id, draft, key=run.key),
                         billing.lookup)
    run.write("invoice", {"number": invoice.number, "total": str(invoice.total),
                          "currency": invoice.currency, "project_id": project["project_id"]})
    return {"invoice": invoice, "completed_steps": [STEP]}
