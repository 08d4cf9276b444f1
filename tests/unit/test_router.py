from decimal import Decimal

import pytest

from graph.decision import Decision, WorkflowStuck
from graph.nodes import HUMAN_REVIEW as REVIEW_NODE
from graph.router import decide as decide_with
from graph.workflow import DEFAULT_WORKFLOW, STEPS, StepSpec, Workflow, WorkflowError
from state.config import Settings
from state.deal_state import DealState, merge_failures
from state.models import (
    Failure,
    Project,
)
from tests.helpers import make_deal
from tests.unit.samples import (
    APPROVAL,
    CONTRACT,
    ENVELOPE,
    INVOICE,
    NOW,
    PROJECT,
    QUALIFIED,
    SIGNED,
)

SETTINGS = Settings()
def decide(state: DealState, settings: Settings) -> Decision:
    return decide_with(state, settings, DEFAULT_WORKFLOW)


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
    done = state(qualification=QUALIFIED, project=PROJECT, contract=CONTRACT, envelope=ENVELOPE,
                 signature=SIGNED, invoice=INVOICE)
    assert decide(done, SETTINGS).outcome == "completed"


def test_failures_go_to_review_first() -> None:
    failure = Failure(step="create_project", error_type="X", error="down", attempts=3,
                      failed_at=NOW)
    route = decide(state(qualification=QUALIFIED, failures={"create_project": failure}),
                   SETTINGS)
    assert route.goto == (REVIEW_NODE,) and "create_project failed" in route.reason


def test_a_gap_in_the_declaration_is_reported() -> None:
    never = StepSpec("never", "nobody", lambda s, r: PROJECT, "never_done", Project, "Never.",
                     requires=("never_done",))
    gap = DEFAULT_WORKFLOW.with_step(never)  # a step that waits for its own output
    blocked = state(qualification=QUALIFIED, project=PROJECT, contract=CONTRACT,
                    envelope=ENVELOPE, signature=SIGNED)
    blocked = gap.state_schema.model_validate({**blocked.model_dump(), "invoice": INVOICE})
    with pytest.raises(WorkflowStuck, match="no step is ready"):
        decide_with(blocked, SETTINGS, gap)


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ((*STEPS, STEPS[0]), "step declared twice: qualify_lead"),
        ((StepSpec("x", "a", lambda s, r: PROJECT, "x_out", Project, "X.",
                   requires=("nothing_makes_this",)),), "requires unknown condition"),
    ],
)
def test_a_contradictory_declaration_is_refused(steps: tuple[StepSpec, ...],
                                                message: str) -> None:
    with pytest.raises(WorkflowError, match=message):
        Workflow(steps)


def test_merge_failures_adds_and_clears() -> None:
    failure = Failure(step="a", error_type="X", error="e", attempts=1, failed_at=NOW)
    merged = merge_failures({}, {"a": failure, "b": failure})
    assert set(merged) == {"a", "b"}
    assert merge_failures(merged, {"a": None}) == {"b": failure}


def test_every_step_names_an_existing_output_field() -> None:
    for spec in STEPS:
        assert spec.output in DealState.model_fields
