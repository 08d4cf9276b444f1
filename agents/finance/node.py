"""The finance agent's step: the invoice."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.finance.invoicing import draft_invoice
from agents.step_run import StepRun
from agents.systems import Billing
from state.deal_state import DealState
from state.models import Invoice


def generate_invoice(state: DealState, run: StepRun) -> Invoice:
    """Invoice the deal once: qualified and with a project, per the shared facts.

    The request's fingerprint leaves the dates out: a retry on a later day asks
    for the same invoice, not a second one.
    """
    deal = state.deal
    _, project = run.require_all("qualified", "project")
    terms_days = deal.terms_days(run.settings.payment_terms_days)
    draft = draft_invoice(deal, tax_rate=run.settings.tax_rate, terms_days=terms_days,
                          issued_on=datetime.now(UTC).date())
    billing = run.system(Billing)
    terms = draft.model_dump(mode="json", exclude={"issued_on", "due_on"})
    invoice = run.effect("billing.issue_invoice", Invoice,
                         {**terms, "terms_days": terms_days},
                         lambda key: billing.issue_invoice(deal.deal_id, draft, key=key,
                                                           client=deal.client),
                         billing.lookup)
    run.write("invoice", {"number": invoice.number, "total": str(invoice.total),
                          "currency": invoice.currency, "project_id": project["project_id"]})
    return invoice
