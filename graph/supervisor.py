"""The supervisor node: asks the rules or the LLM for a `Decision`, audits it, routes by it.

The thread's mode (`state.supervisor`) picks who decides; whoever it is, the
decision has one shape, is audited by one function, and becomes one `Command`.
Both decide by the declaration the deal follows (`graph.versions.follow`), and each
route entry of the audit trail names the declaration's version it was made under
and the version the deal started on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command

from graph.decision import Decision
from graph.guard import Verdict
from graph.llm_supervisor import llm_decide
from graph.nodes import SUPERVISOR
from graph.router import decide
from graph.runtime import ContextResolver, DealContext, once_key, origin_of
from graph.versions import follow, started_on
from graph.workflow import Workflow
from state.audit import AuditTrail, Origin
from state.deal_state import DealState
from state.models import Status
from state.work import StepWork

SupervisorNode = Callable[[DealState, Runtime[DealContext], StepWork], Command[str]]


def audit_decision(audit: AuditTrail, origin: Origin, decision: Decision, mode: str,
                   dedupe_key: str | None, work: StepWork | None = None) -> None:
    """Append the supervisor's decision to the audit trail (once per checkpoint)."""
    audit.append(origin, "route.end" if decision.outcome else "route", reason=decision.reason,
                 detail={"goto": list(decision.goto), "outcome": decision.outcome,
                         "mode": mode, **decision.audit},
                 dedupe_key=dedupe_key, work=work)


def audit_verdicts(audit: AuditTrail, origin: Origin, work: StepWork | None = None
                   ) -> Callable[[list[Verdict]], None]:
    """A recorder of the guard's verdicts on one model turn."""
    def record(verdicts: list[Verdict]) -> None:
        for verdict in verdicts:
            audit.append(origin, "guard.allowed" if verdict.allowed else "guard.refused",
                         reason=verdict.reason, detail={"tool": verdict.tool,
                                                        "call_id": verdict.call_id}, work=work)
    return record


def status_after(decision: Decision, workflow: Workflow) -> Status:
    """The status the thread is in once the decision is carried out."""
    if decision.outcome is not None:
        return decision.outcome
    waits = [workflow.waiting_status(node) for node in decision.goto]
    first = waits[0] if waits else None
    return first if first is not None and len(set(waits)) == 1 else "running"


def make_supervisor(workflow: Workflow, contexts: ContextResolver) -> SupervisorNode:
    """The supervisor node of `workflow`."""
    def supervisor(state: DealState, runtime: Runtime[DealContext],
                   work: StepWork) -> Command[str]:
        """Route to the next step(s), to review, or end the thread with its outcome."""
        context = contexts(runtime)
        origin = origin_of(runtime, state.deal.deal_id, "supervisor", SUPERVISOR)
        fresh = not state.completed_steps and getattr(state, "workflow_version", None) is None
        if fresh:  # its input did not say (plain LangGraph, LangGraph Server): it starts on this
            applicable, adopted = workflow, started_on(workflow)
        else:
            applicable, adopted = follow(workflow, state)  # and the steps it adopts
        if state.supervisor == "rules":
            decision = decide(state, context.settings, applicable)
        else:
            decision = llm_decide(state, context.settings, applicable,
                                  audit_verdicts(context.data.audit, origin, work))
        started = workflow.version if fresh else getattr(state, "workflow_version", None)
        versions = {"workflow_version": workflow.version, "started_on": started}
        audit_decision(context.data.audit, origin, replace(
            decision, audit={**decision.audit, **versions}), state.supervisor,
            once_key(runtime, "route"), work)
        if origin.thread_id:  # the registry follows the graph, however it is driven
            context.data.registry.record(state.deal, origin.thread_id,
                                         status_after(decision, workflow), work)
        update = dict(decision.update)
        if not state.completed_steps:  # the input as given may be a dict: keep the typed deal,
            update["deal"] = state.deal  # defaults included, for every reader of the state
        update.update(adopted)
        if decision.outcome is not None:
            return Command(goto=END, update={**update, "outcome": decision.outcome})
        return Command(goto=list(decision.goto), update=update or None)

    return supervisor
