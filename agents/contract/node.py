"""The contract agent's steps: render and store the contract, send it for signature."""

from __future__ import annotations

from agents.contract.templates import TEMPLATE_VERSION, render_contract
from agents.step_run import StepRun
from agents.systems import ContractRepository, ESign
from state.deal_state import DealState
from state.models import Contract, Envelope

SUPERSEDED = "superseded by another branch of the deal's thread"


def generate_contract(state: DealState, run: StepRun) -> Contract:
    """Render the contract from the template and store its text and hash."""
    deal = state.deal
    text, digest = render_contract(deal, deal.terms_days(run.settings.payment_terms_days))
    repo = run.system(ContractRepository)
    contract = run.effect(
        "contracts.store_contract", Contract,
        {"sha256": digest, "template_version": TEMPLATE_VERSION},
        lambda key: repo.store_contract(deal.deal_id, text, digest, TEMPLATE_VERSION, key=key),
        repo.lookup,
    )
    run.write("contract", {"contract_id": contract.contract_id, "sha256": contract.sha256})
    return contract


def send_for_signature(state: DealState, run: StepRun) -> Envelope:
    """Send the stored contract to the lead's contact; void any envelope it supersedes."""
    if state.contract is None:
        raise ValueError("send_for_signature needs a contract")
    deal, contract = state.deal, state.contract
    esign = run.system(ESign)
    signer = (deal.lead.contact_name, deal.lead.contact_email)
    envelope = run.effect(
        "esign.send_envelope", Envelope,
        {"contract_id": contract.contract_id, "sha256": contract.sha256,
         "signer_name": signer[0], "signer_email": signer[1]},
        lambda key: esign.send_envelope(deal.deal_id, contract, *signer, key=key),
        esign.lookup,
    )
    for stale in esign.open_envelopes(deal.deal_id):
        if stale != envelope.envelope_id:
            _void(run, esign, stale)
    run.write("envelope", {"envelope_id": envelope.envelope_id, "status": "sent"})
    return envelope


def _void(run: StepRun, esign: ESign, envelope_id: str) -> None:
    run.effect("esign.void_envelope", Envelope, {"envelope_id": envelope_id, "reason": SUPERSEDED},
               lambda key: esign.void_envelope(envelope_id, reason=SUPERSEDED, key=key),
               esign.lookup)
