"""The `generate_contract` and `send_for_signature` nodes."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import DealContext, context_of, effect_key, systems_for
from agents.contract.templates import TEMPLATE_VERSION, render_contract
from state.deal_state import DealState

GENERATE = "generate_contract"
SEND = "send_for_signature"


def generate_contract(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Render the contract from the template and store its text and hash."""
    settings = context_of(runtime).settings
    text, digest = render_contract(state.deal, settings.payment_terms_days)
    contract = systems_for(runtime).contracts.store_contract(
        state.deal.deal_id, text, digest, TEMPLATE_VERSION,
        key=effect_key(state.deal.deal_id, GENERATE),
    )
    return {"contract": contract, "completed_steps": [GENERATE]}


def send_for_signature(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Send the stored contract to the lead's contact for e-signature."""
    if state.contract is None:
        raise ValueError("send_for_signature needs a contract")
    lead = state.deal.lead
    envelope = systems_for(runtime).esign.send_envelope(
        state.deal.deal_id, state.contract, lead.contact_name, lead.contact_email,
        key=effect_key(state.deal.deal_id, SEND),
    )
    return {"envelope": envelope, "completed_steps": [SEND]}
