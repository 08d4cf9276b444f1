"""The guard: every tool call the LLM supervisor makes is checked against the rules.

A call runs only if the declared workflow allows it now: known tool, valid
arguments, this deal, the step not done, its dependencies met, no review the
policies require skipped, not twice in one turn. Everything else is refused
with a reason the model can act on. No text anywhere (lead notes, tool results,
reviewer comments) can change these checks: they read only the typed state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import ToolCall
from pydantic import BaseModel, ValidationError

from graph.nodes import HUMAN_REVIEW
from graph.tools import REVIEW_TOOL, ReviewArgs, agent_tools
from graph.workflow import Workflow
from state.config import Settings
from state.deal_state import DealState
from state.validation import first_error


@dataclass(frozen=True)
class Verdict:
    """The guard's answer to one tool call: the node to run, or why not."""

    call_id: str
    tool: str
    node: str | None
    reason: str

    @property
    def allowed(self) -> bool:
        """Whether the call may run."""
        return self.node is not None


def _validate(model: type[BaseModel], args: object) -> tuple[BaseModel | None, str]:
    try:
        return model.model_validate(args), ""
    except ValidationError as exc:
        return None, f"malformed arguments: {first_error(exc, 'arguments')}"


def check_call(call: ToolCall, state: DealState, settings: Settings,
               workflow: Workflow) -> Verdict:
    """Check one call in isolation (see `check_turn` for a whole model turn)."""
    name, call_id = call.get("name", ""), call.get("id") or ""

    def refuse(reason: str) -> Verdict:
        return Verdict(call_id, name, None, reason)

    tools = agent_tools(workflow)
    if name != REVIEW_TOOL and name not in tools:
        return refuse(f"unknown tool {name!r:.60}; available: {', '.join([*tools, REVIEW_TOOL])}")
    args, problem = _validate(ReviewArgs if name == REVIEW_TOOL else tools[name].args,
                              call.get("args"))
    if args is None:
        return refuse(problem)
    if getattr(args, "deal_id", None) != state.deal.deal_id:
        return refuse(f"deal_id must be {state.deal.deal_id!r}")
    outcome = workflow.outcome_of(state)
    if outcome is not None:
        return refuse(f"the deal has ended ({outcome}); nothing more may run")
    if name == REVIEW_TOOL:
        return Verdict(call_id, name, HUMAN_REVIEW, f"review requested: {args.reason}")  # type: ignore[attr-defined]
    spec = workflow.step(args.step)  # type: ignore[attr-defined]
    if state.failures:
        return refuse("a failed step is waiting for human review")
    if spec.done(state):
        return refuse(f"{spec.name} is already done; a step never runs twice")
    unmet = workflow.unmet(spec, state)
    if unmet:
        return refuse(f"{spec.name} depends on {', '.join(unmet)}, which is not done yet")
    if spec.approval_gated and workflow.needs_approval(state, settings):
        return refuse(f"the deal is over {settings.review_threshold_usd:,.0f} USD and needs a "
                      f"person's approval first: call {REVIEW_TOOL}")
    return Verdict(call_id, name, spec.name, f"allowed: {spec.name}")


def check_turn(calls: Sequence[ToolCall], state: DealState, settings: Settings,
               workflow: Workflow) -> list[Verdict]:
    """Check every call of one model turn; a review request runs alone, nothing runs twice."""
    verdicts = [check_call(call, state, settings, workflow) for call in calls]
    wants_review = any(v.node == HUMAN_REVIEW for v in verdicts)
    seen: set[str] = set()
    checked = []
    for verdict in verdicts:
        if verdict.allowed and wants_review and verdict.node != HUMAN_REVIEW:
            verdict = Verdict(verdict.call_id, verdict.tool, None,
                              "a human review was requested in the same turn; wait for it")
        elif verdict.allowed and verdict.node in seen:
            verdict = Verdict(verdict.call_id, verdict.tool, None,
                              f"{verdict.node} was already called in this turn")
        if verdict.node:
            seen.add(verdict.node)
        checked.append(verdict)
    return checked
