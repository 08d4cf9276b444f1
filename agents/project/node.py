"""The project agent's step: the delivery project and its tasks."""

from __future__ import annotations

from agents.project.templates import PROJECT_TEMPLATES
from agents.step_run import MissingFact, StepRun
from agents.systems import ProjectTool
from state.deal_state import DealState
from state.models import Project


def create_project(state: DealState, run: StepRun) -> Project:
    """Create the delivery project and its tasks, for a deal the lead agent qualified."""
    deal = state.deal
    if not run.require("qualified")["qualified"]:
        raise MissingFact(f"{deal.deal_id}.qualified says the lead is not qualified")
    pm = run.system(ProjectTool)
    name = f"{deal.client} – {deal.deal_type} ({deal.deal_id})"
    tasks = PROJECT_TEMPLATES[deal.deal_type]
    request = {"name": name, "template": deal.deal_type,
               "tasks": [task.model_dump(mode="json") for task in tasks]}
    project = run.effect(
        "pm.create_project", Project, request,
        lambda key: pm.create_project(deal.deal_id, name=name, template=deal.deal_type,
                                      tasks=tasks, key=key),
        pm.lookup,
    )
    run.write("project", {"project_id": project.project_id, "tasks": len(project.tasks)})
    return project
