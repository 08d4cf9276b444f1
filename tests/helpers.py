"""Deal builders shared by the tests."""

from __future__ import annotations

from typing import Any

from state.models import DealInput

GOOD_LEAD = {"company_size": 300, "industry": "software", "engagement": 80,
             "contact_name": "Sam Signer", "contact_email": "sam@example.com"}
WEAK_LEAD = {"company_size": 5, "industry": "mining", "engagement": 10, "budget": "100"}


def deal_data(deal_id: str = "D-1", value: str = "12000.00", **overrides: Any) -> dict[str, Any]:
    lead = {**GOOD_LEAD, "budget": str(float(value) * 2), **overrides.pop("lead", {})}
    return {"deal_id": deal_id, "client": "Acme GmbH", "value": value, "lead": lead, **overrides}


def make_deal(deal_id: str = "D-1", value: str = "12000.00", **overrides: Any) -> DealInput:
    return DealInput.model_validate(deal_data(deal_id, value, **overrides))


def counts(records: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    return {system: len(rows) for system, rows in records.items()}


ONE_EACH = {"crm": 1, "projects": 1, "contracts": 1, "envelopes": 1, "invoices": 1}
