"""Whether a workflow declaration contradicts itself: what `Workflow` refuses, in words.

Each check returns the problems it finds, first one first; `Workflow` raises a
`WorkflowError` with the first problem of all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graph.wait_policy import WaitPolicy
from state.deal_state import DealState

if TYPE_CHECKING:
    from graph.workflow import Workflow


def declaration_errors(workflow: Workflow) -> list[str]:
    """Every contradiction of the declaration: duplicates, unknown conditions, bad waits."""
    names = [spec.name for spec in workflow.steps]
    outputs = [spec.output for spec in workflow.steps]
    events = [event for spec in workflow.steps for event in spec.events]
    errors = []
    for label, values in (("step", names), ("output", outputs), ("event", events)):
        twice = {v for v in values if values.count(v) > 1}
        if twice:
            errors.append(f"{label} declared twice: {', '.join(sorted(twice))}")
    if errors:
        return errors
    for spec in workflow.steps:
        unknown = [c for c in spec.requires if c not in workflow.conditions]
        if unknown:
            errors.append(f"{spec.name} requires unknown condition(s) {', '.join(unknown)} "
                          f"(known: {', '.join(workflow.conditions)})")
        if spec.handle is not None and (not spec.handle_field or spec.handle_fact not in (
                *outputs, *DealState.model_fields)):
            errors.append(f"{spec.name}: handle {spec.handle!r} is not a declared output and "
                          "its field (like envelope.envelope_id)")
    errors += [problem for policy in workflow.waits for problem in wait_errors(workflow, policy)]
    return errors + change_errors(workflow)


def wait_errors(workflow: Workflow, policy: WaitPolicy) -> list[str]:
    """A wait at a node that does not wait, or deadlines it cannot carry out."""
    if workflow.waiting_status(policy.node) is None:
        return [f"wait {policy.name}: {policy.node} is not a node that waits"]
    if policy.undelayed():
        return [f"wait {policy.name}: no setting {', '.join(policy.undelayed())} and no "
                "declared delay"]
    calls = [d.action for d in policy.deadlines if d.call is not None]
    handle = next((s.handle for s in workflow.steps if s.name == policy.node), None)
    if calls and (policy.system is None or handle is None):
        return [f"wait {policy.name}: {', '.join(calls)} call(s) a system, so the wait needs a "
                "system and its step a handle"]
    return []


def change_errors(workflow: Workflow) -> list[str]:
    """What is wrong with the declared renames and removals (empty: nothing)."""
    names = {spec.name for spec in workflow.steps}
    errors = [f"renamed {old!r}: it is still a declared step" for old in workflow.renamed
              if old in names]
    errors += [f"renamed {old!r} to {new!r}, which is not a declared step"
               for old, new in workflow.renamed.items() if new not in names]
    errors += [f"removed {name!r}: it is still a declared step" for name in workflow.removed
               if name in names]
    errors += [f"{name!r} is declared both renamed and removed" for name in workflow.removed
               if name in workflow.renamed]
    return errors
