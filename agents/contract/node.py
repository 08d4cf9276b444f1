"""The `generate_contract` and `send_for_signature` nodes."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import DealContext, step_run
from agents.contract.templates import TEMPLATE_VERSION, render_contract
from state.deal_state import DealState
from state.models import Contract, Envelope

GENERATE = "generate_contract"
SEND = "send_for_signature"


def generate_contract(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Render the contract from the template and store its text and hash."""
    deal = state.deal
    run = step_run(runtime, deal.deal_id, "contract", GENERATE)
    text, digest = render_contract(deal, run.settings.payment_terms_days)
    repo = run.systems.contracts
    contract = run.effect(
        "contracts.store_contract", Contract,
        lambda: repo.store_contract(deal.deal_id, text, digest, TEMPLATE_VERSION, key=run.key),
        repo.lookup,
    )
    run.write("contract", {"contract_id": contract.contract_id, "sha256": contract.sha256})
    return {"contract": contract, "completed_steps": [GENERATE]}


def send_for_signature(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Send the stored contract to the lead's contact for e-signature."""
    if state.contract is None:
        raise ValueError("send_for_signature needs a contract")
    deal, contract = state.deal, state.contract
    run = step_run(runtime, deal.deal_id, "contract", SEND)
    esign = run.systems.esign
    envelope = run.effect(
        "esign.send_envelope", Envelope,
        lambda: esign.send_envelope(deal.deal_id, contract, deal.lead.contact_name,
                                    deal.lead.contact_email, key=run.key),
        esign.lookup,
    )
    run.write("envelope", {"envelope_id": envelope.envelope_id, "status": "sent"})
    return {"envelope": envelope, "completed_steps": [SEND]}
