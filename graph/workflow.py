"""The workflow, declared once: steps, what each needs, and the policies.

This declaration drives the rules router (`graph.router`), builds the graph's
nodes (`graph.builder`), and is what any other supervisor is checked against.
Adding a step means one agent node and one `StepSpec` here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from agents.contract.node import generate_contract, send_for_signature
from agents.finance.node import generate_invoice
from agents.lead.node import qualify_lead
from agents.project.node import create_project
from graph.signature import await_signature
from state.config import Settings
from state.deal_state import DealState, Outcome

Fact = Literal["qualified", "project", "contract", "envelope", "signature_completed"]

FACTS: dict[Fact, Callable[[DealState], bool]] = {
    "qualified": lambda s: s.qualification is not None and s.qualification.qualified,
    "project": lambda s: s.project is not None,
    "contract": lambda s: s.contract is not None,
    "envelope": lambda s: s.envelope is not None,
    "signature_completed": lambda s: (
        s.signature is not None and s.signature.event == "signature.completed"
    ),
}


@dataclass(frozen=True)
class StepSpec:
    """One step of the process."""

    name: str
    agent: str
    node: Callable[..., Any]
    requires: tuple[Fact, ...]
    output: str
    system: str | None
    description: str
    kind: Literal["agent", "event"] = "agent"
    approval_gated: bool = True

    def done(self, state: DealState) -> bool:
        """Whether the step's output is already in the state."""
        return getattr(state, self.output) is not None

    def unmet(self, state: DealState) -> list[Fact]:
        """The facts this step still waits for."""
        return [fact for fact in self.requires if not FACTS[fact](state)]


STEPS: tuple[StepSpec, ...] = (
    StepSpec("qualify_lead", "lead", qualify_lead, (), "qualification", "crm",
             "Score the lead 0-10 and update the CRM lead record.", approval_gated=False),
    StepSpec("create_project", "project", create_project, ("qualified",), "project", "pm",
             "Create the delivery project and its tasks from the deal type's template."),
    StepSpec("generate_contract", "contract", generate_contract, ("qualified",), "contract",
             "contracts", "Render the contract from the template and store it with its hash."),
    StepSpec("send_for_signature", "contract", send_for_signature, ("contract",), "envelope",
             "esign", "Send the contract to the signer as an e-signature envelope."),
    StepSpec("await_signature", "contract", await_signature, ("envelope",), "signature", None,
             "Wait for signature.completed or signature.declined.", kind="event"),
    StepSpec("generate_invoice", "finance", generate_invoice,
             ("project", "signature_completed"), "invoice", "billing",
             "Issue the invoice (net terms, tax, gap-free number)."),
)


def step(name: str) -> StepSpec:
    """The declared step called `name`."""
    for spec in STEPS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown step {name!r}")


def approved(state: DealState) -> bool:
    """Whether a person approved the deal."""
    return any(r.kind == "approval" and r.decision == "approve" for r in state.reviews)


def needs_approval(state: DealState, settings: Settings) -> bool:
    """The large-deal policy: over the threshold (in USD) and not yet approved."""
    return state.deal.value_usd > settings.review_threshold_usd and not approved(state)


def outcome_of(state: DealState) -> Outcome | None:
    """The terminal outcome the state has reached, if any (first rule wins)."""
    if state.reviews and state.reviews[-1].decision == "reject":
        return "rejected"
    if state.qualification is not None and not state.qualification.qualified:
        return "disqualified"
    if state.signature is not None and state.signature.event == "signature.declined":
        return "declined"
    if all(spec.done(state) for spec in STEPS):
        return "completed"
    return None


def ready_steps(state: DealState) -> list[StepSpec]:
    """Steps not done whose requirements all hold (they may run in parallel)."""
    return [spec for spec in STEPS if not spec.done(state) and not spec.unmet(state)]
