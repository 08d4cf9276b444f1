"""The `qualify_lead` node."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import DealContext, effect_key, systems_for
from agents.lead.scoring import score_lead
from state.deal_state import DealState

STEP = "qualify_lead"


def qualify_lead(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Score the lead and record the result on the CRM lead record."""
    qualification = score_lead(state.deal)
    systems_for(runtime).crm.record_qualification(
        state.deal, qualification, key=effect_key(state.deal.deal_id, STEP)
    )
    return {"qualification": qualification, "completed_steps": [STEP]}
