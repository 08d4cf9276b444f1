"""The rules router on a small workflow of its own: readiness, approval, outcomes, failures."""

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from graph.decision import Decision, WorkflowStuck
from graph.nodes import HUMAN_REVIEW as REVIEW_NODE
from graph.router import decide as decide_with
from graph.wait_policy import DeadlineSpec, SystemCall, WaitPolicy
from graph.workflow import StepSpec, Workflow, WorkflowError
from state.config import Settings
from state.deal_state import DealState, merge_failures
from state.models import Failure
from tests.unit.samples import APPROVAL, NOW
from tests.unit.small_workflow import (
    ACK_WAIT,
    ACKED,
    DONE,
    INTAKE,
    REFUSED,
    REFUSED_INTAKE,
    SMALL,
    STEPS,
    Out,
    small_state,
    step,
)

SETTINGS = Settings()


def decide(state: DealState, settings: Settings) -> Decision:
    return decide_with(state, settings, SMALL)


def state(value: str = "1000.00", **outputs: Any) -> DealState:
    return small_state(value, **outputs)


def test_the_first_step_runs_first() -> None:
    assert decide(state(), SETTINGS).goto == ("intake",)


def test_steps_whose_conditions_hold_are_ready_together() -> None:
    assert decide(state(intake_out=INTAKE), SETTINGS).goto == ("build", "draft")


def test_large_deal_needs_approval_before_gated_steps_then_proceeds() -> None:
    route = decide(state("50000.01", intake_out=INTAKE), SETTINGS)
    assert route.goto == (REVIEW_NODE,) and "needs approval" in route.reason
    assert decide(state("50000.00", intake_out=INTAKE), SETTINGS).goto[0] != REVIEW_NODE
    assert decide(state("50000.01"), SETTINGS).goto == ("intake",)  # not approval-gated
    approved = state("50000.01", intake_out=INTAKE, reviews=[APPROVAL])
    assert decide(approved, SETTINGS).goto == ("build", "draft")
    strict = Settings(review_threshold_usd=Decimal("100"))
    assert decide(state("101.00", intake_out=INTAKE), strict).goto == (REVIEW_NODE,)


def test_a_step_waits_for_every_condition_it_requires() -> None:
    no_build = state(intake_out=INTAKE, draft_out=DONE, dispatch_out=DONE, ack_out=ACKED)
    assert decide(no_build, SETTINGS).goto == ("build",)
    unacked = state(intake_out=INTAKE, build_out=DONE, draft_out=DONE, dispatch_out=DONE)
    assert decide(unacked, SETTINGS).goto == ("await_ack",)
    ready = unacked.model_copy(update={"ack_out": ACKED})
    assert decide(ready, SETTINGS).goto == ("bill",)


@pytest.mark.parametrize(
    ("outputs", "outcome"),
    [
        ({"intake_out": REFUSED_INTAKE}, "disqualified"),
        ({"intake_out": INTAKE, "draft_out": DONE, "dispatch_out": DONE, "ack_out": REFUSED},
         "declined"),
        ({"intake_out": INTAKE, "reviews": [APPROVAL.model_copy(
            update={"decision": "reject"})]}, "rejected"),
        ({"intake_out": INTAKE, "reviews": [APPROVAL.model_copy(
            update={"decision": "expire"})]}, "expired"),
    ],
)
def test_terminal_outcomes(outputs: dict[str, Any], outcome: str) -> None:
    assert decide(state(**outputs), SETTINGS).outcome == outcome


def test_completed_when_every_step_is_done() -> None:
    done = state(intake_out=INTAKE, build_out=DONE, draft_out=DONE, dispatch_out=DONE,
                 ack_out=ACKED, bill_out=DONE)
    assert decide(done, SETTINGS).outcome == "completed"


def test_failures_go_to_review_first() -> None:
    failure = Failure(step="build", error_type="X", error="down", attempts=3, failed_at=NOW)
    route = decide(state(intake_out=INTAKE, failures={"build": failure}), SETTINGS)
    assert route.goto == (REVIEW_NODE,) and "build failed" in route.reason


def test_a_gap_in_the_declaration_is_reported() -> None:
    never = step("never", "nobody", "never_done", requires=("never_done",))
    gap = SMALL.with_step(never)  # a step that waits for its own output
    blocked = gap.state_schema.model_validate({**state(
        intake_out=INTAKE, build_out=DONE, draft_out=DONE, dispatch_out=DONE, ack_out=ACKED,
        bill_out=DONE).model_dump()})
    with pytest.raises(WorkflowStuck, match="no step is ready"):
        decide_with(blocked, SETTINGS, gap)


def test_with_step_places_the_step_and_its_wait() -> None:
    extra = step("check", "risk", "check_out", requires=("accepted",))
    grown = SMALL.with_step(extra, after="intake", required_by=("draft",))
    assert [s.name for s in grown.steps][:2] == ["intake", "check"]
    assert grown.step("draft").requires == ("accepted", "check_out")
    assert grown.step("build").requires == ("accepted",)
    assert SMALL.step("draft").requires == ("accepted",)  # the original is unchanged
    waiting = step("await_x", "x", "x_out", kind="event", events=("x.done",))
    policy = WaitPolicy("x", "await_x", (DeadlineSpec("expire", "end", after=timedelta(1)),))
    assert SMALL.with_step(waiting, wait=policy).wait_policy("await_x") == policy


@pytest.mark.parametrize(
    ("steps", "waits", "message"),
    [
        ((*STEPS, STEPS[0]), (), "step declared twice: intake"),
        ((step("x", "a", "x_out", requires=("nothing_makes_this",)),), (),
         "requires unknown condition"),
        ((*STEPS, step("await_2", "r", "ack2", kind="event", events=("ack.given",))), (),
         "event declared twice: ack.given"),
        ((step("w", "a", "w_out", kind="event", handle="nowhere.ref"),), (),
         "handle 'nowhere.ref' is not a declared output"),
        ((step("w", "a", "w_out", kind="event", handle="w_out"),), (),
         "handle 'w_out' is not a declared output and its field"),
        (STEPS, (WaitPolicy("nope", "build", ()),), "build is not a node that waits"),
        (STEPS, (WaitPolicy("ack", "await_ack", (DeadlineSpec("remind", "r"),)),),
         "no setting ack_remind_after and no declared delay"),
        (STEPS, (WaitPolicy("ack", "await_ack", (DeadlineSpec(
            "remind", "r", call=SystemCall("nudge", Out), after=timedelta(1)),)),),
         r"remind call\(s\) a system, so the wait needs a system"),
    ],
)
def test_a_contradictory_declaration_is_refused(steps: tuple[StepSpec, ...],
                                                waits: tuple[WaitPolicy, ...],
                                                message: str) -> None:
    with pytest.raises(WorkflowError, match=message):
        Workflow(steps, waits)


def test_merge_failures_adds_and_clears() -> None:
    failure = Failure(step="a", error_type="X", error="e", attempts=1, failed_at=NOW)
    merged = merge_failures({}, {"a": failure, "b": failure})
    assert set(merged) == {"a", "b"}
    assert merge_failures(merged, {"a": None}) == {"b": failure}


def test_the_state_schema_has_a_field_for_every_declared_output() -> None:
    for spec in SMALL.steps:
        assert spec.output in SMALL.state_schema.model_fields
    assert ACK_WAIT in SMALL.waits
