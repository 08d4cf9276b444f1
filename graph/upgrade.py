"""What a deal in flight does next under the current declaration, against what its checkpoint says.

`judge` takes the deal's state (read with the current state types), the node
whose interrupt its checkpoint waits in and the tasks its checkpoint has
scheduled, and says what happens next under the current declaration:

- `same`: it goes on where the checkpoint says (the same wait, under a
  declared new name too; the same steps; or the supervisor, choosing steps
  its own declaration had);
- `different`: something else runs next (which, and what the checkpoint had);
- `moved`: it waits in, or has scheduled, a step declared removed: the
  supervisor decides again (what it would choose);
- `stuck`: no step would be ready and no outcome reached;
- `undeclared_wait` / `undeclared_step`: the checkpoint waits in, or
  schedules, a step the declaration neither has nor declares renamed or removed.

The rules decide for every supervisor mode here: the LLM supervisor's choices
pass the same rules (the guard). The last three, and a checkpoint that cannot be
read (`unreadable`, found by whoever reads it), are problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from graph.decision import Decision, WorkflowStuck
from graph.nodes import HUMAN_REVIEW, SUPERVISOR
from graph.router import decide
from graph.versions import recorded_steps
from graph.workflow import Workflow
from state.config import Settings
from state.deal_state import DealState

PROBLEMS = ("stuck", "undeclared_wait", "undeclared_step", "unreadable")
"""The verdicts `dealflow workflow check` fails on (exit 1)."""


@dataclass(frozen=True)
class Judgement:
    """What a deal does next under the current declaration, and why, in one line."""

    verdict: str
    next: tuple[str, ...]
    message: str

    @property
    def problem(self) -> bool:
        """Whether the deal cannot go on as it is under the current declaration."""
        return self.verdict in PROBLEMS


def judge(workflow: Workflow, settings: Settings, state: DealState, waits_in: str | None,
          scheduled: Sequence[str]) -> Judgement:
    """What `state`'s deal does next under `workflow`, against its checkpoint's next tasks."""
    if state.outcome is not None:
        return Judgement("same", (), f"ended {state.outcome}")
    if waits_in is not None:
        return _waiting(workflow, settings, state, waits_in)
    steps = [name for name in scheduled if name != SUPERVISOR]
    if steps:
        return _scheduled(workflow, settings, state, steps)
    return _deciding(workflow, settings, state)


def _rules(workflow: Workflow, settings: Settings, state: DealState
           ) -> tuple[Decision | None, str]:
    """The rules' decision on the state by the deal's declaration, or why they are stuck."""
    try:
        return decide(state, settings, workflow.for_deal(state)), ""
    except WorkflowStuck as exc:
        return None, str(exc)


def _shown(decision: Decision) -> str:
    return ", ".join(decision.goto) if decision.goto else f"the end ({decision.outcome})"


def _waiting(workflow: Workflow, settings: Settings, state: DealState, waits_in: str
             ) -> Judgement:
    """The checkpoint waits in `waits_in`'s interrupt."""
    node = workflow.renamed.get(waits_in, waits_in)
    if node == HUMAN_REVIEW:
        return Judgement("same", (HUMAN_REVIEW,), "waits for a person's review, as before")
    if workflow.declared_step(node) is None:
        if waits_in in workflow.removed:
            return _moved(workflow, settings, state, f"waited in {waits_in}, declared removed")
        return Judgement("undeclared_wait", (), f"waits in {waits_in}, which the declaration "
                         "no longer has: declare it renamed or removed")
    called = f" (now {node})" if node != waits_in else ""
    decision, stuck = _rules(workflow, settings, state)
    if decision is None:
        return Judgement("stuck", (node,), f"waits in {waits_in}{called}; {stuck}")
    if node not in decision.goto:
        return Judgement("different", decision.goto, f"waits in {waits_in}{called}, but the "
                         f"rules now choose {_shown(decision)}")
    return Judgement("same", (node,), f"waits in {waits_in}{called}, as before")


def _scheduled(workflow: Workflow, settings: Settings, state: DealState,
               steps: list[str]) -> Judgement:
    """The checkpoint has `steps` scheduled (it stopped mid-run)."""
    gone = [name for name in steps if workflow.declared_step(name) is None]
    undeclared = [name for name in gone if name not in workflow.removed]
    if undeclared:
        return Judgement("undeclared_step", (), f"its checkpoint runs {', '.join(undeclared)} "
                         "next, which the declaration no longer has: declare it renamed or "
                         "removed")
    if gone:
        return _moved(workflow, settings, state, f"had {', '.join(gone)} scheduled, declared "
                      "removed")
    runs = tuple(workflow.step(name).name for name in steps)
    decision, stuck = _rules(workflow, settings, state)
    if decision is None:
        return Judgement("stuck", runs, f"runs {', '.join(runs)}; {stuck}")
    if set(decision.goto) != set(runs):
        return Judgement("different", runs, f"its checkpoint runs {', '.join(runs)}; the rules "
                         f"now choose {_shown(decision)}")
    return Judgement("same", runs, f"runs {', '.join(runs)}, as before")


def _moved(workflow: Workflow, settings: Settings, state: DealState, what: str) -> Judgement:
    """The deal's next step is gone by declaration: the supervisor decides again."""
    decision, stuck = _rules(workflow, settings, state)
    if decision is None:
        return Judgement("stuck", (), f"{what}; {stuck}")
    return Judgement("moved", decision.goto, f"{what}: the supervisor decides again and "
                     f"chooses {_shown(decision)} (dealflow recover)")


def _deciding(workflow: Workflow, settings: Settings, state: DealState) -> Judgement:
    """The supervisor runs next (or nothing is scheduled): what the rules choose."""
    decision, stuck = _rules(workflow, settings, state)
    if decision is None:
        return Judgement("stuck", (), stuck)
    recorded = recorded_steps(workflow, state)
    added = [name for name in decision.goto if recorded is not None and name not in recorded
             and workflow.declared_step(name) is not None]
    if added:
        return Judgement("different", decision.goto, f"the supervisor chooses {_shown(decision)}"
                         f"; {', '.join(added)} is new since the deal started")
    return Judgement("same", decision.goto, f"the supervisor chooses {_shown(decision)}")
