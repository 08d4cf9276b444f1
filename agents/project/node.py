"""The `create_project` node."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import DealContext, MissingContext, step_run
from agents.project.templates import PROJECT_TEMPLATES
from state.deal_state import DealState
from state.models import Project

STEP = "create_project"


def create_project(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Create the delivery project and its tasks, for a deal the lead agent qualified."""
    deal = state.deal
    run = step_run(runtime, deal.deal_id, "project", STEP)
    if not run.require("qualified")["qualified"]:
        raise MissingContext(f"{deal.deal_id}.qualified says the lead is not qualified")
    pm = run.systems.pm
    project = run.effect(
        "pm.create_project", Project,
        lambda: pm.create_project(
            deal.deal_id, name=f"{deal.client} – {deal.deal_type} ({deal.deal_id})",
            template=deal.deal_type, tasks=PROJECT_TEMPLATES[deal.deal_type], key=run.key),
        pm.lookup,
    )
    run.write("project", {"project_id": project.project_id, "tasks": len(project.tasks)})
    return {"project": project, "completed_steps": [STEP]}
