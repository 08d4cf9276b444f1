"""What the API returns: a deal's report, derived from a LangGraph state snapshot.

Importing it imports no graph: `DealReport` is read back from the database by
`dealflow.recorded_status`; the functions that derive one import what they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from state.models import Status
from state.registry import DealRow

if TYPE_CHECKING:  # importing this module imports no graph (`dealflow.recorded_status`)
    from langgraph.types import StateSnapshot

    from graph.workflow import Workflow
    from state.deal_state import DealState


class DealReport(BaseModel):
    """The JSON contract of `run`, `resume`, `event` and `status`."""

    thread_id: str
    deal_id: str
    status: Status
    completed_steps: list[str]
    pending: dict[str, Any] | None
    context: dict[str, Any]
    supervisor: str = "rules"
    usage: dict[str, Any] = {}
    summary: str | None = None
    note: str | None = None
    deadlines: list[dict[str, Any]] = []
    workflow_version: str | None = None  # the declaration the deal started on (graph.versions)


def status_of(snapshot: StateSnapshot, workflow: Workflow) -> Status:
    """The thread's status as users see it."""
    for task in snapshot.tasks:
        waiting = workflow.waiting_status(task.name) if task.interrupts else None
        if waiting is not None:
            return waiting
    if snapshot.next:
        return "failed" if any(task.error for task in snapshot.tasks) else "running"
    outcome = snapshot.values.get("outcome") if isinstance(snapshot.values, dict) else None
    return outcome or "running"


def pending_of(snapshot: StateSnapshot) -> dict[str, Any] | None:
    """The pending interrupt's payload (with its id and node), or None."""
    for task in snapshot.tasks:
        for pending in task.interrupts:
            value = pending.value if isinstance(pending.value, dict) else {"value": pending.value}
            return {**value, "interrupt_id": pending.id, "node": task.name}
    return None


def deal_state_of(snapshot: StateSnapshot, workflow: Workflow) -> DealState:
    """The snapshot's values as the workflow's typed state."""
    return workflow.state_schema.model_validate(snapshot.values)


def context_of_state(state: DealState) -> dict[str, Any]:
    """The deal's current facts as JSON-ready data (contract text left out; see records)."""
    from graph.versions import VERSION_FIELDS

    data = state.model_dump(mode="json", exclude={
        "completed_steps", "supervisor_messages", "pending_tool_calls", "llm_usage",
        "llm_refused_turns", "llm_summary", "supervisor", "effect_keys", *VERSION_FIELDS})
    if data.get("contract"):
        data["contract"].pop("text", None)
    data["failures"] = list(data["failures"].values())
    return data


def has_run(snapshot: StateSnapshot) -> bool:
    """Whether the thread's state holds its deal: a first step has been checkpointed.

    A thread whose only checkpoint is its input (LangGraph writes it before the
    first step) has no deal in its values yet; read it with `starting_report`.
    """
    return isinstance(snapshot.values, dict) and "deal" in snapshot.values


def starting_report(row: DealRow, note: str) -> DealReport:
    """The report of a registered deal whose first step has not been checkpointed yet."""
    return DealReport(thread_id=row.thread_id, deal_id=row.deal_id, status="running",
                      completed_steps=[], pending=None, context={"deal": row.input}, note=note)


def build_report(thread_id: str, snapshot: StateSnapshot, workflow: Workflow) -> DealReport:
    """Assemble the report of a thread from its latest snapshot."""
    state = deal_state_of(snapshot, workflow)
    return DealReport(
        thread_id=thread_id,
        deal_id=state.deal.deal_id,
        status=status_of(snapshot, workflow),
        completed_steps=list(state.completed_steps),
        pending=pending_of(snapshot),
        context=context_of_state(state),
        supervisor=state.supervisor,
        usage=state.llm_usage.model_dump(mode="json"),
        summary=state.llm_summary,
        workflow_version=getattr(state, "workflow_version", None),
    )
