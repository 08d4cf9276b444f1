"""The supervisor router in rules mode: the declared workflow decides what runs next."""

from __future__ import annotations

from dataclasses import dataclass

from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command

from agents.context import DealContext, context_of, data_for, once_key, origin_of
from graph import workflow
from state.config import Settings
from state.deal_state import DealState, Outcome

REVIEW_NODE = "human_review"
SUPERVISOR_NODE = "supervisor"


class WorkflowStuck(RuntimeError):
    """No step can run and no outcome is reached: the declaration has a gap."""


@dataclass(frozen=True)
class Route:
    """The router's decision: nodes to run next (in parallel), or an outcome."""

    goto: tuple[str, ...] = ()
    outcome: Outcome | None = None
    reason: str = ""


def decide(state: DealState, settings: Settings) -> Route:
    """Apply the workflow rules to the state; deterministic, no model involved."""
    outcome = workflow.outcome_of(state)
    if outcome is not None:
        return Route(outcome=outcome, reason=f"outcome {outcome}")
    if state.failures:
        steps = ", ".join(sorted(state.failures))
        return Route(goto=(REVIEW_NODE,), reason=f"{steps} failed after retries")
    ready = workflow.ready_steps(state)
    if not ready:
        raise WorkflowStuck(
            f"deal {state.deal.deal_id}: no step is ready and no outcome is reached "
            f"(completed: {', '.join(state.completed_steps) or 'none'})"
        )
    if any(spec.approval_gated for spec in ready) and workflow.needs_approval(state, settings):
        return Route(
            goto=(REVIEW_NODE,),
            reason=f"value {state.deal.value_usd:,.2f} USD is over "
            f"{settings.review_threshold_usd:,.0f} USD and needs approval",
        )
    names = tuple(spec.name for spec in ready)
    return Route(goto=names, reason="ready: " + ", ".join(names))


def audit_route(runtime: Runtime[DealContext], state: DealState, route: Route) -> None:
    """Append the routing decision to the audit trail (once per checkpoint)."""
    origin = origin_of(runtime, state.deal.deal_id, "supervisor", SUPERVISOR_NODE)
    data_for(runtime).audit.append(
        origin, "route.end" if route.outcome else "route",
        reason=route.reason, detail={"goto": list(route.goto), "outcome": route.outcome},
        dedupe_key=once_key(runtime, "route"),
    )


def audit_llm_route(runtime: Runtime[DealContext], state: DealState,
                    command: Command[str]) -> None:
    """Append the LLM supervisor's routing decision to the audit trail."""
    goto = command.goto if isinstance(command.goto, list) else [command.goto]
    update = command.update if isinstance(command.update, dict) else {}
    outcome = update.get("outcome")
    escalation = update.get("escalation")
    reason = escalation.reason if escalation else f"{state.supervisor} supervisor chose " + (
        f"outcome {outcome}" if outcome else ", ".join(str(g) for g in goto))
    data_for(runtime).audit.append(
        origin_of(runtime, state.deal.deal_id, "supervisor", SUPERVISOR_NODE),
        "route.end" if outcome else "route", reason=reason,
        detail={"goto": [str(g) for g in goto], "outcome": outcome, "mode": state.supervisor},
        dedupe_key=once_key(runtime, "route"),
    )


def supervisor(state: DealState, runtime: Runtime[DealContext]) -> Command[str]:
    """Route to the next step(s), to review, or end the thread with its outcome.

    The thread's mode (`state.supervisor`) picks the rules or the LLM supervisor.
    """
    if state.supervisor != "rules":
        from graph.llm_supervisor import llm_supervise  # it imports this module

        command = llm_supervise(state, runtime, state.supervisor)
        audit_llm_route(runtime, state, command)
        return command
    route = decide(state, context_of(runtime).settings)
    audit_route(runtime, state, route)
    if route.outcome is not None:
        return Command(goto=END, update={"outcome": route.outcome})
    return Command(goto=list(route.goto))
