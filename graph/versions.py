"""Which declaration a deal follows: the workflow's version, and the steps that apply to a deal.

A workflow's version is a digest of what its declaration says about the
process (steps with their requirements, outputs, kinds and events; waits with
their deadlines; renames and removals), never of Python objects, so the same
declaration has the same version in every process and every run. A deal
records the version and the step names of the declaration it started on
(`started_on`: the run's input, so the checkpoint keeps them).

Under a later declaration, a step the deal's declaration did not have applies
to it unless the step is declared `new_deals_only` (in the spirit of
Temporal's `patched`) or the deal has passed its place (a step declared after
it is done); a renamed step counts under its new name. `for_deal` is the
declaration the deal follows: the supervisor's rules, the LLM's tools and the
guard all read it. A deal that started before versions were recorded
(`workflow_version` unset) runs no `new_deals_only` step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import Field

from graph.step_spec import StepSpec
from graph.wait_policy import WaitPolicy
from state.deal_state import DealState

if TYPE_CHECKING:
    from graph.workflow import Workflow

VERSION_FIELDS = ("workflow_version", "workflow_steps", "workflow_adopted")
"""The state fields that say which declaration a deal follows."""


class VersionedState(DealState):
    """`DealState` with the declaration the deal started on, and the steps it adopted since.

    `workflow_adopted`: steps added to the declaration after the deal started
    that apply to it, recorded by the supervisor the first time it meets them,
    so that the deal keeps them even once it passes their place.
    """

    workflow_version: str | None = None
    workflow_steps: list[str] | None = None
    workflow_adopted: list[str] = Field(default_factory=list)


def describe(workflow: Workflow) -> dict[str, Any]:
    """The declaration as plain data: what the version digests and `workflow show` prints."""
    return {"steps": [_step(spec) for spec in workflow.steps],
            "waits": [_wait(policy) for policy in workflow.waits],
            "renamed": dict(sorted(workflow.renamed.items())),
            "removed": sorted(workflow.removed)}


def _step(spec: StepSpec) -> dict[str, Any]:
    model = spec.output_model
    return {"name": spec.name, "agent": spec.agent, "kind": spec.kind, "output": spec.output,
            "output_model": f"{model.__module__}.{model.__qualname__}",
            "requires": list(spec.requires), "conditions": [name for name, _ in spec.conditions],
            "system": spec.system, "events": list(spec.events), "waits_in": spec.waits_in,
            "handle": spec.handle, "ends_deal": spec.outcome is not None,
            "approval_gated": spec.approval_gated, "new_deals_only": spec.new_deals_only}


def _wait(policy: WaitPolicy) -> dict[str, Any]:
    return {"name": policy.name, "node": policy.node, "system": policy.system,
            "notify": policy.notify,
            "deadlines": [{"name": policy.deadline_name(spec), "action": spec.action,
                           "call": spec.call.method if spec.call else None}
                          for spec in policy.deadlines]}


def version_of(workflow: Workflow) -> str:
    """The declaration's version: 12 hex digits of the SHA-256 of `describe`, as canonical JSON."""
    text = json.dumps(describe(workflow), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def started_on(workflow: Workflow) -> dict[str, Any]:
    """The state a deal starts with to remember its declaration (the run's input adds it)."""
    return {"workflow_version": workflow.version,
            "workflow_steps": [spec.name for spec in workflow.steps]}


@dataclass(frozen=True)
class Added:
    """A step of the current declaration that the deal's own declaration did not have."""

    step: str
    applies: bool
    why: str


def recorded_steps(workflow: Workflow, state: DealState) -> set[str] | None:
    """The deal's declared and adopted steps, as now named (None: started unversioned)."""
    names = getattr(state, "workflow_steps", None)
    if names is None:
        return None
    adopted = getattr(state, "workflow_adopted", None) or []
    return {workflow.renamed.get(name, name) for name in (*names, *adopted)}


def added_steps(workflow: Workflow, state: DealState) -> list[Added]:
    """The steps not done that the deal's declaration lacked, and whether each applies.

    For a deal that started before versions were kept, only the steps that do
    not apply are listed (which steps are new to it cannot be told).
    """
    found = _judged(workflow, state)
    if recorded_steps(workflow, state) is None:
        return [added for added in found if not added.applies]
    return found


def _judged(workflow: Workflow, state: DealState) -> list[Added]:
    """Every step not done that the deal's declaration lacks (unversioned: every one)."""
    recorded = recorded_steps(workflow, state)
    found = []
    for index, spec in enumerate(workflow.steps):
        if spec.done(state) or (recorded is not None and spec.name in recorded):
            continue
        passed = next((later.name for later in workflow.steps[index + 1:]
                       if later.done(state)), None)
        if spec.new_deals_only:
            found.append(Added(spec.name, False, "new deals only"))
        elif passed is not None:
            found.append(Added(spec.name, False, f"the deal has passed its place ({passed} "
                                                 "is done)"))
        else:
            found.append(Added(spec.name, True, "the deal has not passed its place"))
    return found


def for_deal(workflow: Workflow, state: DealState) -> Workflow:
    """The declaration `state`'s deal follows: `workflow` without the steps that do not apply."""
    return follow(workflow, state)[0]


def follow(workflow: Workflow, state: DealState) -> tuple[Workflow, dict[str, Any]]:
    """The declaration the deal follows, and the state update adopting the steps added for it.

    The supervisor records the update, so a step that applies when the deal
    first meets it keeps applying (a parallel step declared after it may finish
    first, or it may fail and be retried).
    """
    if getattr(state, "workflow_version", None) == workflow.version:
        return workflow, {}
    judged = _judged(workflow, state)
    names = frozenset(a.step for a in judged if not a.applies)
    adopted = [a.step for a in judged if a.applies]
    update = {"workflow_adopted": [*getattr(state, "workflow_adopted", []), *adopted]
              } if adopted else {}
    return (without(workflow, names) if names else workflow), update


@lru_cache(maxsize=256)
def without(workflow: Workflow, names: frozenset[str]) -> Workflow:
    """`workflow` without the steps `names`, their waits and the requirements on them.

    Made once per workflow and set of names, so the tools built from it are too.
    """
    kept = [spec for spec in workflow.steps if spec.name not in names]
    held = {c for spec in kept for c in (spec.output, *(name for name, _ in spec.conditions))}
    gone = {c for spec in workflow.steps if spec.name in names
            for c in (spec.output, *(name for name, _ in spec.conditions))} - held
    steps = tuple(replace(spec, requires=tuple(r for r in spec.requires if r not in gone))
                  for spec in kept)
    return replace(workflow, steps=steps,
                   waits=tuple(p for p in workflow.waits if p.node not in names),
                   renamed={old: new for old, new in workflow.renamed.items()
                            if new not in names})


def rename_step(workflow: Workflow, old: str, new: str) -> Workflow:
    """`workflow` with the step `old` called `new` (its wait too), the rename declared.

    A deal waiting in `old` finishes there: the graph keeps a node of that name
    running the renamed step, and everything that names the step follows `new`.
    """
    steps = tuple(replace(s, name=new) if s.name == old else s for s in workflow.steps)
    waits = tuple(replace(p, node=new) if p.node == old else p for p in workflow.waits)
    renamed = {before: new if after == old else after
               for before, after in workflow.renamed.items()}
    return replace(workflow, steps=steps, waits=waits, renamed={**renamed, old: new})
