from datetime import UTC, datetime
from decimal import Decimal

import pytest

from graph.router import REVIEW_NODE, WorkflowStuck, decide
from graph.workflow import STEPS
from state.config import Settings
from state.deal_state import DealState, merge_failures
from state.models import (
    Contract,
    Envelope,
    Failure,
    Invoice,
    Project,
    Qualification,
    ReviewDecision,
    SignatureEvent,
)
from tests.helpers import make_deal

NOW = datetime(2026, 11, 25, tzinfo=UTC)
SETTINGS = Settings()
QUALIFIED = Qualification(score=8, qualified=True, icp_fit=True, reasons=())
PROJECT = Project(project_id="P", name="n", template="t", tasks=())
CONTRACT = Contract(contract_id="C", template_version="v", sha256="0" * 64, text="t")
ENVELOPE = Envelope(envelope_id="E", contract_id="C", signer_name="s", signer_email="s@x.io",
                    sent_at=NOW)
SIGNED = SignatureEvent(event="signature.completed", received_at=NOW)
APPROVAL = ReviewDecision(kind="approval", decision="approve", decided_at=NOW)


def state(value: str = "1000.00", **facts: object) -> DealState:
    return DealState(deal=make_deal(value=value), **facts)  # type: ignore[arg-type]


def test_first_step_is_qualification() -> None:
    assert decide(state(), SETTINGS).goto == ("qualify_lead",)


def test_project_and_contract_are_ready_together() -> None:
    assert decide(state(qualification=QUALIFIED), SETTINGS).goto == (
        "create_project", "generate_contract")


def test_large_deal_needs_approval_before_side_effects_then_proceeds() -> None:
    route = decide(state("50000.01", qualification=QUALIFIED), SETTINGS)
    assert route.goto == (REVIEW_NODE,) and "needs approval" in route.reason
    assert decide(state("50000.00", qualification=QUALIFIED), SETTINGS).goto[0] != REVIEW_NODE
    approved = state("50000.01", qualification=QUALIFIED, reviews=[APPROVAL])
    assert decide(approved, SETTINGS).goto == ("create_project", "generate_contract")
    strict = Settings(review_threshold_usd=Decimal("100"))
    assert decide(state("101.00", qualification=QUALIFIED), strict).goto == (REVIEW_NODE,)


def test_invoice_waits_for_both_project_and_signature() -> None:
    no_project = state(qualification=QUALIFIED, contract=CONTRACT, envelope=ENVELOPE,
                       signature=SIGNED)
    assert decide(no_project, SETTINGS).goto == ("create_project",)
    unsigned = state(qualification=QUALIFIED, project=PROJECT, contract=CONTRACT,
                     envelope=ENVELOPE)
    assert decide(unsigned, SETTINGS).goto == ("await_signature",)
    ready = unsigned.model_copy(update={"signature": SIGNED})
    assert decide(ready, SETTINGS).goto == ("generate_invoice",)


@pytest.mark.parametrize(
    ("facts", "outcome"),
    [
        ({"qualification": QUALIFIED.model_copy(update={"qualified": False})}, "disqualified"),
        ({"qualification": QUALIFIED, "contract": CONTRACT, "envelope": ENVELOPE,
          "signature": SIGNED.model_copy(update={"event": "signature.declined"})}, "declined"),
        ({"qualification": QUALIFIED, "reviews": [APPROVAL.model_copy(
            update={"decision": "reject"})]}, "rejected"),
    ],
)
def test_terminal_outcomes(facts: dict[str, object], outcome: str) -> None:
    assert decide(state(**facts), SETTINGS).outcome == outcome


def test_completed_when_every_step_is_done() -> None:
    invoice = Invoice(number="INV-1", currency="USD", lines=(), subtotal=Decimal(0),
                      tax_rate=Decimal(0), tax=Decimal(0), total=Decimal(0),
                      issued_on=NOW.date(), due_on=NOW.date())
    done = state(qualification=QUALIFIED, project=PROJECT, contract=CONTRACT, envelope=ENVELOPE,
                 signature=SIGNED, invoice=invoice)
    assert decide(done, SETTINGS).outcome == "completed"


def test_failures_go_to_review_first() -> None:
    failure = Failure(step="create_project", error_type="X", error="down", attempts=3,
                      failed_at=NOW)
    route = decide(state(qualification=QUALIFIED, failures={"create_project": failure}),
                   SETTINGS)
    assert route.goto == (REVIEW_NODE,) and "create_project failed" in route.reason


def test_a_gap_in_the_declaration_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from graph import workflow

    monkeypatch.setitem(workflow.FACTS, "contract", lambda s: False)  # a fact that never holds
    blocked = state(qualification=QUALIFIED, project=PROJECT, contract=CONTRACT)
    with pytest.raises(WorkflowStuck, match="no step is ready"):
        decide(blocked, SETTINGS)


def test_merge_failures_adds_and_clears() -> None:
    failure = Failure(step="a", error_type="X", error="e", attempts=1, failed_at=NOW)
    merged = merge_failures({}, {"a": failure, "b": failure})
    assert set(merged) == {"a", "b"}
    assert merge_failures(merged, {"a": None}) == {"b": failure}


def test_every_step_names_an_existing_output_field() -> None:
    for spec in STEPS:
        assert spec.output in DealState.model_fields
