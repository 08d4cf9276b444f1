"""Answering a thread's wait: is it waiting there, and events from outside for its event steps.

`waiting_snapshot` checks that a thread waits at a node (the review, or an
event step) before an answer is claimed, and says what ended the wait when
something else did. An event (`dealflow event`, `DealService.event`, the e-sign
webhook) goes to the event step that declares it (`StepSpec.events`): it
claims that step's wait and resumes the thread with `{"event": name}`; the
same event again, once applied, is a success that changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langgraph.types import Command, StateSnapshot

from dealflow.deadlines import Claimed, claim_wait, current_wait, ended_wait
from dealflow.errors import InvalidInput, NotWaiting
from dealflow.reports import DealReport, build_report, deal_state_of, has_run, status_of
from graph.step_spec import StepSpec
from state.leases import thread_is_held
from state.registry import DealRow

if TYPE_CHECKING:
    from dealflow.api import DealService, StepCallback


def waiting_snapshot(service: DealService, row: DealRow, node: str, what: str,
                     attempt: dict[str, Any] | str | None = None,
                     snapshot: StateSnapshot | None = None) -> StateSnapshot:
    """The snapshot of a thread waiting at `node`, else `NotWaiting` (`what`: `a review`).

    `snapshot`: the thread's, if the caller just read it. If something else
    ended the wait, `Decided` says what and when, and the refused `attempt`
    is audited.
    """
    snapshot = snapshot or service.snapshot(row.thread_id)
    current = status_of(snapshot, service.workflow) if snapshot.created_at else "not started"
    found = current_wait(snapshot)
    if current == service.workflow.waiting_status(node) and found and \
            service.workflow.renamed.get(found[0], found[0]) == node:  # or under its old name
        return snapshot
    ended_wait(service, row, node, current, attempt)  # Decided: what ended it, and when
    if current == "running" and service.leases.token(row.thread_id) is None \
            and thread_is_held(service.pool, row.thread_id):
        raise NotWaiting(f"thread {row.thread_id} is running (another process drives it) "
                         f"and is not waiting for {what}; see: dealflow status {row.deal_id}")
    if current == "running":
        raise NotWaiting(f"thread {row.thread_id} stopped mid-run and is not waiting for "
                         f"{what}; continue it with: dealflow recover")
    raise NotWaiting(f"thread {row.thread_id} is {current}, not waiting for {what}")


def event_step(service: DealService, event: str) -> StepSpec:
    """The event step that takes `event`, else `InvalidInput` listing the declared events."""
    try:
        return service.workflow.event_step(event)
    except KeyError as exc:
        raise InvalidInput(str(exc.args[0])) from None


def claim_event(service: DealService, ref: str, event: str) -> Claimed:
    """Claim the wait of the event step that takes `event`, without running anything.

    `fresh` is False when the event claimed the wait before (or was applied).
    """
    spec = event_step(service, event)
    row = service.deal(ref)
    snapshot = service.snapshot(row.thread_id)
    if delivered(service, row, spec, event, snapshot) is not None:
        return Claimed(row, False)
    waiting_snapshot(service, row, spec.name, f"a {spec.topic} event",
                     attempt={"event": event}, snapshot=snapshot)
    return Claimed(row, claim_wait(service, row, snapshot, {"event": event},
                                   service.workflow.answered_by(spec.name)))


def deliver_event(service: DealService, ref: str, event: str,
                  on_step: StepCallback | None = None) -> DealReport:
    """Deliver `event` to the thread's event step that waits for it, and run on."""
    spec = event_step(service, event)
    row = service.deal(ref)
    with service.holding(row.thread_id):
        snapshot = service.snapshot(row.thread_id)  # read once, under the lease
        found = delivered(service, row, spec, event, snapshot)
        if found is not None:
            return found
        waiting_snapshot(service, row, spec.name, f"a {spec.topic} event",
                         attempt={"event": event}, snapshot=snapshot)
        claim_wait(service, row, snapshot, {"event": event},
                   service.workflow.answered_by(spec.name))
        return service.drive(row.thread_id, Command(resume={"event": event}), on_step,
                             snapshot)


def delivered(service: DealService, row: DealRow, spec: StepSpec, event: str,
              snapshot: StateSnapshot) -> DealReport | None:
    """The report of a thread whose step took this event already (a repeat is a success)."""
    if not has_run(snapshot):
        return None
    state = deal_state_of(snapshot, service.workflow)
    status = status_of(snapshot, service.workflow)
    if spec.took(getattr(state, spec.output, None)) != event or status == "running":
        return None
    report = build_report(row.thread_id, snapshot, service.workflow)
    return report.model_copy(update={"note": f"{event} was already delivered; the thread "
                                              f"is {status}"})
