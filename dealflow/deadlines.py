"""The service's side of waits: claiming one for an answer, and firing deadlines.

An answer (a review decision, an event) claims the thread's current wait
before it is applied (`claim_wait`); if something else ended the wait first,
the caller gets `Decided` saying what and when ("the review expired at …"). A
deadline job calls `fire_deadline` on whichever worker runs it: under the
thread's lease it checks that the thread still waits where the deadline was
set (else it cancels it), then reminds, escalates, or expires the wait (it
claims the wait and resumes the thread with the expiry, which the graph turns
into the outcome `expired`). What a deadline tells people and what it has the
wait's system do (through the effect ledger, once) is what its `DeadlineSpec`
declares: the notice text, and a `SystemCall` on the fact the waiting step
names as its handle (the e-sign system reminds the signer, voids the envelope).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langgraph.types import Command, StateSnapshot

from agents.systems import Systems
from dealflow.errors import Decided
from dealflow.reports import deal_state_of
from graph.step_spec import StepSpec
from graph.wait_policy import DeadlineSpec, WaitPolicy
from graph.workflow import Workflow
from state.audit import Origin
from state.deadlines import Deadline
from state.deal_state import DealState
from state.outbox import Notice
from state.registry import DealRow
from state.waits import EXPIRED, Wait, WaitNotFound

if TYPE_CHECKING:
    from dealflow.api import DealService

DONE = {"approve": "approved", "reject": "rejected", "retry": "sent back to retry its step"}


def current_wait(snapshot: StateSnapshot) -> tuple[str, str] | None:
    """`(node, wait key)` of the interrupt the thread stopped at, if it did."""
    for task in snapshot.tasks:
        if task.interrupts:
            return task.name, task.id
    return None


def checkpoint_of(snapshot: StateSnapshot) -> str | None:
    """The id of the checkpoint the snapshot shows (where an answer or a deadline acts)."""
    return (snapshot.config or {}).get("configurable", {}).get("checkpoint_id")


def refusal(thread_id: str, wait: Wait) -> str:
    """Why an answer was not applied: what ended the wait, and when."""
    when = f"{wait.resolved_at:%Y-%m-%d %H:%M:%S %Z}" if wait.resolved_at else "an earlier time"
    resolution = wait.resolution or {}
    if EXPIRED in resolution:
        return (f"thread {thread_id}: the {wait.wait} expired at {when} "
                f"({resolution[EXPIRED].get('deadline')}); nothing else was applied")
    if "decision" in resolution:
        done = DONE.get(resolution["decision"], resolution["decision"])
        return (f"thread {thread_id}: the deal was already {done} by "
                f"{resolution.get('reviewer', 'a reviewer')} at {when}")
    return (f"thread {thread_id}: the {wait.wait} wait already ended with "
            f"{resolution.get('event', resolution)} at {when}")


@dataclass(frozen=True)
class Claimed:
    """A wait claimed for an answer: the deal, and whether this call's claim ended the wait.

    `fresh` is False when the same answer had claimed it before (a retried request).
    """

    row: DealRow
    fresh: bool


def claim_wait(service: DealService, row: DealRow, snapshot: StateSnapshot,
               resolution: dict[str, Any], by: str) -> bool:
    """Claim the thread's current wait for `resolution`, or raise `Decided`.

    True if this call ended the wait; False if the same resolution had claimed
    it before. A wait that was never stored (opened before deadlines existed)
    is not claimed (True: the caller applies it).
    """
    found = current_wait(snapshot)
    if found is None:
        return True
    node, key = found
    origin = Origin(row.deal_id, agent=service.workflow.agent_of(node), step=node,
                    thread_id=row.thread_id, checkpoint_id=checkpoint_of(snapshot))
    try:
        claim = service.data.waits.claim(origin, key, resolution, by)
    except WaitNotFound:
        return True
    if not claim.won and claim.wait.resolution != resolution:
        raise Decided(refusal(row.thread_id, claim.wait))
    return claim.won


def ended_wait(service: DealService, row: DealRow, node: str, current: str,
               attempt: dict[str, Any] | str | None) -> None:
    """Raise `Decided` if the last wait at `node` (`human_review`) ended: what ended it, when.

    The refused `attempt` is audited (`wait.refused`) next to what won.
    """
    policy = service.workflow.wait_policy(node)
    wait = service.data.waits.last_ended(row.thread_id, policy.name) if policy else None
    if wait is None:
        return
    message = f"{refusal(row.thread_id, wait)}; the thread is {current}"
    if attempt is not None:
        by = attempt.get("reviewer") if isinstance(attempt, dict) else None
        service.data.audit.append(
            Origin(row.deal_id, agent=service.workflow.agent_of(wait.node), step=wait.node,
                   thread_id=row.thread_id), "wait.refused",
            actor=str(by or service.workflow.answered_by(wait.node))[:200],
            reason=message[:500], detail={"wait_key": wait.wait_key, "refused": attempt,
                                          "winner": wait.resolution})
    raise Decided(message)


def apply_claim(service: DealService, thread_id: str) -> str:
    """Apply what claimed the thread's current wait, if nothing applied it yet.

    An expiry is finished by its deadline (which makes its declared system call first).
    """
    with service.holding(thread_id, wait=False):
        snapshot = service.snapshot(thread_id)
        found = current_wait(snapshot)
        wait = service.data.waits.get(thread_id, found[1]) if found else None
        if wait is None or wait.resolution is None:
            return "nothing to apply"
        if not wait.expired:
            return service.drive(thread_id, Command(resume=wait.resolution), None,
                                  snapshot).status
    name = wait.resolution[EXPIRED].get("deadline")
    expiry = next((d for d in service.data.deadlines.for_thread(thread_id)
                   if d.wait_key == wait.wait_key and d.name == name), None)
    return fire_deadline(service, expiry.id) if expiry else "nothing to apply"


def fire_deadline(service: DealService, deadline_id: int) -> str:
    """Fire one deadline if its wait is still open; what happened, in a word or two."""
    deadline = service.data.deadlines.get(deadline_id)
    if deadline is None:
        return "unknown deadline"
    if deadline.status == "cancelled" or (deadline.status == "fired"
                                          and deadline.action != "expire"):
        return deadline.status
    with service.holding(deadline.thread_id):
        snapshot = service.snapshot(deadline.thread_id)
        origin = Origin(deadline.deal_id, agent="deadline", step=deadline.name,
                        thread_id=deadline.thread_id, checkpoint_id=checkpoint_of(snapshot))
        wait = service.data.waits.get(deadline.thread_id, deadline.wait_key)
        found = current_wait(snapshot)
        policy = service.workflow.wait_policy(wait.node) if wait else None
        if wait is None or policy is None or found is None or found[1] != wait.wait_key:
            service.data.deadlines.cancel(origin, deadline, "the thread no longer waits there")
            return "cancelled"
        if policy.declared(deadline.name) is None:
            service.data.deadlines.cancel(origin, deadline, "the workflow no longer declares it")
            return "cancelled"
        if deadline.action == "expire":
            return _expire(service, deadline, wait, policy, snapshot, origin)
        if wait.resolved_at is not None:
            return "cancelled"  # answered, not applied yet: the claim cancelled it
        state = deal_state_of(snapshot, service.workflow)
        _call_system(service, policy, wait, state, deadline, origin)
        service.data.deadlines.fired(origin, deadline, _notice(service, deadline, policy,
                                                               state, wait))
        return "fired"


def _call_system(service: DealService, policy: WaitPolicy, wait: Wait, state: DealState,
                 deadline: Deadline, origin: Origin) -> None:
    """Have the wait's system do what the deadline declares, once (the effect ledger)."""
    call = policy.spec(deadline.name).call
    spec = _waiting_step(service, wait)
    handle = spec.handle_of(state) if spec is not None else None
    if call is None or policy.system is None or spec is None or handle is None:
        return
    system = service.systems[policy.system]
    method, lookup = getattr(system, call.method, None), getattr(system, call.lookup, None)
    if not callable(method):
        raise TypeError(f"system {policy.system} has no {call.method}() for {deadline.name}")
    request: dict[str, Any] = {spec.handle_field: handle, **dict(call.args)}
    if call.per_deadline:
        request["deadline"] = deadline.id
    limit = service.context.rate_limit_of(policy.system)
    if limit is not None:  # a worker's job: held back (continued later) rather than parked
        limit.hold_back()
    service.data.effects.perform(
        origin, f"{policy.system}.{call.method}", request, call.receipt,
        lambda key: method(handle, key=key, **dict(call.args)),
        lookup if callable(lookup) else None)


def missing_calls(workflow: Workflow, systems: Systems) -> list[str]:
    """`esign.remind_signer`: each declared deadline call its wait's system cannot make."""
    return [f"{policy.system}.{name}" for policy in workflow.waits
            if policy.system in systems.names
            for deadline in policy.deadlines if deadline.call is not None
            for name in (deadline.call.method, deadline.call.lookup)
            if not callable(getattr(systems[policy.system], name, None))]


def _waiting_step(service: DealService, wait: Wait) -> StepSpec | None:
    """The declared step whose wait this is (None for the review)."""
    return service.workflow.declared_step(wait.node)


def _expire(service: DealService, deadline: Deadline, wait: Wait, policy: WaitPolicy,
            snapshot: StateSnapshot, origin: Origin) -> str:
    """Claim the wait for the expiry (unless something won first), tell, call, resume."""
    state = deal_state_of(snapshot, service.workflow)
    expiry = {EXPIRED: {"deadline": deadline.name, "due_at": deadline.due_at.isoformat()}}
    if deadline.status == "scheduled":
        claim = service.data.waits.claim(origin, wait.wait_key, expiry,
                                         f"deadline:{deadline.name}", deadline_id=deadline.id)
        if not claim.won and claim.wait.resolution != expiry:
            return "cancelled"  # a person or an event got there first
    elif wait.resolution != expiry:
        return "cancelled"
    service.data.deadlines.fired(origin, deadline, _notice(service, deadline, policy, state,
                                                           wait))
    _call_system(service, policy, wait, state, deadline, origin)
    report = service.drive(deadline.thread_id, Command(resume=expiry), None, snapshot)
    return report.status


EVENTS = {"remind": "reminder", "escalate": "escalated", "expire": "expired"}


def _notice(service: DealService, deadline: Deadline, policy: WaitPolicy, state: DealState,
            wait: Wait) -> Notice:
    """The notification the deadline sends: its declared text, to whom the wait tells."""
    deal = state.deal
    expiry = next((d.due_at for d in service.data.deadlines.for_thread(deadline.thread_id)
                   if d.wait_key == wait.wait_key and d.action == "expire"), None)
    spec: DeadlineSpec = policy.spec(deadline.name)
    text = spec.text(
        deal=f"{deal.client} ({deal.deal_id}, {deal.value:,.2f} {deal.currency})",
        client=deal.client, deal_id=deal.deal_id, since=f"{wait.opened_at:%Y-%m-%d %H:%M %Z}",
        due_at=f"{deadline.due_at:%Y-%m-%d %H:%M %Z}", handle=_handle_text(service, wait, state),
        name=deadline.name)
    to = service.settings.escalation_contact if deadline.action == "escalate" else policy.notify
    return Notice(f"{policy.name}.{EVENTS[deadline.action]}", text, to=to,
                  due_at=expiry if deadline.action != "expire" else deadline.due_at)


def _handle_text(service: DealService, wait: Wait, state: DealState) -> str:
    """`envelope ENV-000001`: what the wait is on, for a notice (empty for the review)."""
    spec = _waiting_step(service, wait)
    handle = spec.handle_of(state) if spec is not None else None
    return f"{spec.handle_fact} {handle}" if spec is not None and handle else ""
