"""The `generate_invoice` node."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langgraph.runtime import Runtime

from agents.context import DealContext, context_of, effect_key, systems_for
from agents.finance.invoicing import draft_invoice
from state.deal_state import DealState

STEP = "generate_invoice"


def generate_invoice(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Draft the invoice and have billing number and send it (once per deal)."""
    settings = context_of(runtime).settings
    draft = draft_invoice(
        state.deal, tax_rate=settings.tax_rate, terms_days=settings.payment_terms_days,
        issued_on=datetime.now(UTC).date(),
    )
    invoice = systems_for(runtime).billing.issue_invoice(
        state.deal.deal_id, draft, key=effect_key(state.deal.deal_id, STEP)
    )
    return {"invoice": invoice, "completed_steps": [STEP]}
