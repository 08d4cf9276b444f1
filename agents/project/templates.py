"""Project templates per deal type: the tasks a delivery project starts with."""

from __future__ import annotations

from state.models import DealType, ProjectTask

PROJECT_TEMPLATES: dict[DealType, tuple[ProjectTask, ...]] = {
    "subscription": (
        ProjectTask(title="Provision tenant", owner_role="solutions engineer", due_in_days=2),
        ProjectTask(title="Kick-off call", owner_role="customer success", due_in_days=5),
        ProjectTask(title="Admin training", owner_role="customer success", due_in_days=14),
    ),
    "implementation": (
        ProjectTask(title="Kick-off workshop", owner_role="project manager", due_in_days=5),
        ProjectTask(title="Requirements and solution design", owner_role="solutions architect",
                    due_in_days=15),
        ProjectTask(title="Configuration and integration", owner_role="implementation engineer",
                    due_in_days=40),
        ProjectTask(title="User acceptance testing", owner_role="project manager",
                    due_in_days=55),
        ProjectTask(title="Go-live and hand-over", owner_role="customer success", due_in_days=60),
    ),
    "consulting": (
        ProjectTask(title="Engagement kick-off", owner_role="engagement lead", due_in_days=3),
        ProjectTask(title="Assessment", owner_role="consultant", due_in_days=20),
        ProjectTask(title="Recommendations report", owner_role="engagement lead", due_in_days=30),
    ),
}
