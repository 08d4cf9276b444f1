"""`dealflow workflow check`: every unfinished deal, read and judged under the current declaration.

For each deal the registry lists as not ended, the latest checkpoint is read
with the current state types (a failure is the verdict `unreadable`) through a
probe: the current graph plus a placeholder node for each step the deal may
have had that the declaration lacks (its recorded steps, its completed steps,
the node of its open wait), so that LangGraph shows the tasks and the interrupt
the checkpoint really has, even in a step that is gone. `graph.upgrade.judge`
then says what happens next under the current declaration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args

import psycopg
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from dealflow.reports import deal_state_of, has_run
from graph.builder import build_graph
from graph.upgrade import Judgement, judge
from graph.versions import Added, added_steps, recorded_steps
from state.deal_state import DealState
from state.models import STATUSES, Outcome
from state.registry import DealRow

if TYPE_CHECKING:
    from dealflow.api import DealService

UNFINISHED = tuple(status for status in STATUSES if status not in get_args(Outcome))
"""Running, waiting or failed: every status but an outcome."""


@dataclass(frozen=True)
class DealCheck:
    """One unfinished deal under the current declaration: what its checkpoint says, what runs."""

    deal_id: str
    thread_id: str
    status: str
    started_on: str | None
    checkpoint_next: list[str]
    waits_in: str | None
    judgement: Judgement
    added: list[Added] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def problem(self) -> bool:
        """Whether the deal cannot go on as it is (`workflow check` exits 1)."""
        return self.judgement.problem

    def as_json(self) -> dict[str, Any]:
        """The deal's entry in `workflow check --json`."""
        return {"deal_id": self.deal_id, "thread_id": self.thread_id, "status": self.status,
                "started_on": self.started_on, "verdict": self.judgement.verdict,
                "problem": self.problem, "checkpoint_next": self.checkpoint_next,
                "waits_in": self.waits_in, "next": list(self.judgement.next),
                "message": self.judgement.message,
                "added": [{"step": a.step, "applies": a.applies, "why": a.why}
                          for a in self.added], "dropped": self.dropped}


class _Placeholder:
    """Stands for a step the declaration lacks; a probe graph is read, never run."""

    def __call__(self, state: Any) -> dict[str, Any]:
        raise RuntimeError("a workflow check probe never runs a step")


def check_deals(service: DealService) -> list[DealCheck]:
    """Every deal not ended, oldest update last, judged under `service.workflow`."""
    probes: dict[frozenset[str], CompiledStateGraph[Any, Any, Any, Any]] = {}
    return [check_deal(service, row, probes)
            for row in service.registry.list(statuses=UNFINISHED)]


def check_deal(service: DealService, row: DealRow,
               probes: dict[frozenset[str], CompiledStateGraph[Any, Any, Any, Any]]
               ) -> DealCheck:
    """One deal: read its checkpoint through a probe, judge what happens next."""
    def checked(judgement: Judgement, snapshot: StateSnapshot | None = None,
                state: DealState | None = None) -> DealCheck:
        waits_in, scheduled = _next_of(snapshot)
        return DealCheck(row.deal_id, row.thread_id, row.status,
                         getattr(state, "workflow_version", None), scheduled, waits_in,
                         judgement, added_steps(service.workflow, state) if state else [],
                         _dropped(service, state) if state else [])

    try:
        snapshot = service.snapshot(row.thread_id)
        if not has_run(snapshot):
            return checked(Judgement("same", (), "not started yet: it starts on the current "
                                     "declaration"))
        snapshot = _probe(service, snapshot, row.thread_id, probes)
        state = deal_state_of(snapshot, service.workflow)
    except psycopg.Error:
        raise
    except Exception as exc:  # deserialization or validation with the current state types
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        return checked(Judgement("unreadable", (), f"its checkpoint cannot be read with the "
                                 f"current state types: {type(exc).__name__}: {reason}"))
    waits_in, scheduled = _next_of(snapshot)
    return checked(judge(service.workflow, service.settings, state, waits_in, scheduled),
                   snapshot, state)


def _next_of(snapshot: StateSnapshot | None) -> tuple[str | None, list[str]]:
    """The node whose interrupt the checkpoint waits in, and its scheduled tasks."""
    if snapshot is None:
        return None, []
    waiting = next((task.name for task in snapshot.tasks if task.interrupts), None)
    return waiting, [task.name for task in snapshot.tasks]


def _probe(service: DealService, snapshot: StateSnapshot, thread_id: str,
           probes: dict[frozenset[str], CompiledStateGraph[Any, Any, Any, Any]]
           ) -> StateSnapshot:
    """The snapshot read by a graph that also has the steps the deal may have had."""
    values = snapshot.values if isinstance(snapshot.values, dict) else {}
    wait = service.data.waits.open_wait(thread_id)
    known = {*service.graph.nodes}
    missing = frozenset(name for name in _candidates(values, wait.node if wait else None)
                        if name not in known)
    if not missing:
        return snapshot
    if missing not in probes:
        builder: Any = build_graph(service.settings, workflow=service.workflow)
        for name in sorted(missing):
            builder.add_node(name, _Placeholder())
        probes[missing] = builder.compile(checkpointer=service.graph.checkpointer)
    return probes[missing].get_state({"configurable": {"thread_id": thread_id}})


def _candidates(values: dict[str, Any], open_wait: str | None) -> Iterable[str]:
    """Step names the deal's checkpoint may schedule: recorded, completed, its open wait."""
    yield from values.get("workflow_steps") or ()
    yield from values.get("completed_steps") or ()
    if open_wait:
        yield open_wait


def _dropped(service: DealService, state: DealState) -> list[str]:
    """Steps of the deal's own declaration the current one lacks (renames aside)."""
    recorded = recorded_steps(service.workflow, state) or set()
    return sorted(name for name in recorded if service.workflow.declared_step(name) is None)
