"""The lead agent's step: score the lead and record it in the CRM."""

from __future__ import annotations

from agents.lead.scoring import score_lead
from agents.step_run import StepRun
from agents.systems import CRM
from state.deal_state import DealState
from state.models import LeadRecord, Qualification


def qualify_lead(state: DealState, run: StepRun) -> Qualification:
    """Score the lead, record it on the CRM lead record, publish `<deal>.qualified`."""
    deal = state.deal
    qualification = score_lead(deal)
    crm = run.system(CRM)
    request = {"deal": deal.model_dump(mode="json"),
               "qualification": qualification.model_dump(mode="json")}
    run.effect("crm.record_qualification", LeadRecord, request,
               lambda key: crm.record_qualification(deal, qualification, key=key), crm.lookup)
    run.write("qualified", {"qualified": qualification.qualified, "score": qualification.score,
                            "icp_fit": qualification.icp_fit})
    return qualification
