"""The `qualify_lead` node."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import DealContext, step_run
from agents.lead.scoring import score_lead
from state.deal_state import DealState
from state.models import LeadRecord

STEP = "qualify_lead"


def qualify_lead(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Score the lead, record it on the CRM lead record, publish `<deal>.qualified`."""
    deal = state.deal
    run = step_run(runtime, deal.deal_id, "lead", STEP)
    qualification = score_lead(deal)
    crm = run.systems.crm
    run.effect("crm.record_qualification", LeadRecord,
               lambda: crm.record_qualification(deal, qualification, key=run.key), crm.lookup)
    run.write("qualified", {"qualified": qualification.qualified, "score": qualification.score,
                            "icp_fit": qualification.icp_fit})
    return {"qualification": qualification, "completed_steps": [STEP]}
