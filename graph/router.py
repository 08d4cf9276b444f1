"""The supervisor in rules mode: the declared workflow decides what runs next."""

from __future__ import annotations

from graph.decision import Decision, WorkflowStuck
from graph.nodes import HUMAN_REVIEW
from graph.workflow import Workflow
from state.config import Settings
from state.deal_state import DealState


def decide(state: DealState, settings: Settings, workflow: Workflow) -> Decision:
    """Apply the workflow rules to the state; deterministic, no model involved."""
    outcome = workflow.outcome_of(state)
    if outcome is not None:
        return Decision(outcome=outcome, reason=f"outcome {outcome}")
    if state.failures:
        steps = ", ".join(sorted(state.failures))
        return Decision(goto=(HUMAN_REVIEW,), reason=f"{steps} failed after retries")
    ready = workflow.ready_steps(state)
    if not ready:
        raise WorkflowStuck(
            f"deal {state.deal.deal_id}: no step is ready and no outcome is reached "
            f"(completed: {', '.join(state.completed_steps) or 'none'})"
        )
    if any(spec.approval_gated for spec in ready) and workflow.needs_approval(state, settings):
        return Decision(
            goto=(HUMAN_REVIEW,),
            reason=f"value {state.deal.value_usd:,.2f} USD is over "
            f"{settings.review_threshold_usd:,.0f} USD and needs approval",
        )
    names = tuple(spec.name for spec in ready)
    return Decision(goto=names, reason="ready: " + ", ".join(names))
