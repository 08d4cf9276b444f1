"""The `create_project` node."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from agents.context import DealContext, effect_key, systems_for
from agents.project.templates import PROJECT_TEMPLATES
from state.deal_state import DealState

STEP = "create_project"


def create_project(state: DealState, runtime: Runtime[DealContext]) -> dict[str, Any]:
    """Create the delivery project and its tasks in the project tool."""
    deal = state.deal
    project = systems_for(runtime).pm.create_project(
        deal.deal_id,
        name=f"{deal.client} – {deal.deal_type} ({deal.deal_id})",
        template=deal.deal_type,
        tasks=PROJECT_TEMPLATES[deal.deal_type],
        key=effect_key(deal.deal_id, STEP),
    )
    return {"project": project, "completed_steps": [STEP]}
