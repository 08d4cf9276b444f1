"""The service's side of waits: claiming one for an answer, and firing deadlines.

An answer (a review decision, a signature event) claims the thread's current
wait before it is applied (`claim_wait`); if something else ended the wait
first, the caller gets `Decided` saying what and when ("the review expired at
…"). A deadline job calls `fire_deadline` on whichever worker runs it: under
the thread's lease it checks that the thread still waits where the deadline
was set (else it cancels it), then reminds (through the effect ledger, once
per deadline), escalates, or expires the wait: it claims the wait, voids the
envelope if the wait's system holds one, and resumes the thread with the
expiry, which the graph turns into the outcome `expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langgraph.types import Command, StateSnapshot

from agents.systems.base import ESign
from dealflow.errors import Decided
from dealflow.reports import deal_state_of
from graph.wait_policy import WaitPolicy
from state.audit import Origin
from state.deadlines import Deadline
from state.deal_state import DealState
from state.models import Envelope, SignerReminder
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
        claim = service.data.waits.claim(origin, key, resolution, by, for_resume=True)
    except WaitNotFound:
        return True
    if not claim.won and claim.wait.resolution != resolution:
        raise Decided(refusal(row.thread_id, claim.wait))
    return claim.won


def ended_wait(service: DealService, row: DealRow, status: str, current: str,
               attempt: dict[str, Any] | str | None) -> None:
    """Raise `Decided` if the wait of `status` (`waiting_review`) ended: what ended it, when.

    The refused `attempt` is audited (`wait.refused`) next to what won.
    """
    node = next((p.node for p in service.workflow.waits
                 if service.workflow.waiting_status(p.node) == status), None)
    policy = service.workflow.wait_policy(node) if node else None
    wait = service.data.waits.last_ended(row.thread_id, policy.name) if policy else None
    if wait is None:
        return
    message = f"{refusal(row.thread_id, wait)}; the thread is {current}"
    if attempt is not None:
        by = attempt.get("reviewer") if isinstance(attempt, dict) else None
        service.data.audit.append(
            Origin(row.deal_id, agent=service.workflow.agent_of(wait.node), step=wait.node,
                   thread_id=row.thread_id), "wait.refused",
            actor=str(by or ("esign" if wait.wait == "signature" else "reviewer"))[:200],
            reason=message[:500], detail={"wait_key": wait.wait_key, "refused": attempt,
                                          "winner": wait.resolution})
    raise Decided(message)


def apply_claim(service: DealService, thread_id: str) -> str:
    """Apply what claimed the thread's current wait, if nothing applied it yet.

    An expiry is finished by its deadline (which voids an envelope first).
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
        state = deal_state_of(snapshot, service.workflow)
        if deadline.action == "expire":
            return _expire(service, deadline, wait, policy, snapshot, origin)
        if wait.resolved_at is not None:
            return "cancelled"  # answered, not applied yet: the claim cancelled it
        if deadline.action == "remind" and policy.system and state.envelope:
            _remind_signer(service, policy, state.envelope, deadline, origin)
        service.data.deadlines.fired(origin, deadline, _notice(service, deadline, policy,
                                                               state, wait))
        return "fired"


def _remind_signer(service: DealService, policy: WaitPolicy, envelope: Envelope,
                   deadline: Deadline, origin: Origin) -> None:
    esign = service.systems[policy.system or ""]
    if not isinstance(esign, ESign):
        raise TypeError(f"system {policy.system} cannot remind a signer")
    service.data.effects.perform(
        origin, f"{policy.system}.remind_signer",
        {"envelope_id": envelope.envelope_id, "deadline": deadline.id}, SignerReminder,
        lambda key: esign.remind_signer(envelope.envelope_id, key=key), esign.reminder)


def _expire(service: DealService, deadline: Deadline, wait: Wait, policy: WaitPolicy,
            snapshot: StateSnapshot, origin: Origin) -> str:
    state = deal_state_of(snapshot, service.workflow)
    expiry = {EXPIRED: {"deadline": deadline.name, "due_at": deadline.due_at.isoformat()}}
    if deadline.status == "scheduled":
        claim = service.data.waits.claim(origin, wait.wait_key, expiry,
                                         f"deadline:{deadline.name}", deadline_id=deadline.id,
                                         for_resume=True)
        if not claim.won and claim.wait.resolution != expiry:
            return "cancelled"  # a person or an event got there first
    elif wait.resolution != expiry:
        return "cancelled"
    service.data.deadlines.fired(origin, deadline, _notice(service, deadline, policy, state,
                                                           wait))
    if policy.system and state.envelope:
        esign = service.systems[policy.system]
        if isinstance(esign, ESign):
            envelope_id = state.envelope.envelope_id
            service.data.effects.perform(
                origin, f"{policy.system}.void_envelope",
                {"envelope_id": envelope_id, "reason": "expired"}, Envelope,
                lambda key: esign.void_envelope(envelope_id, reason="expired", key=key),
                esign.lookup)
    report = service.drive(deadline.thread_id, Command(resume=expiry), None, snapshot)
    return report.status


def _notice(service: DealService, deadline: Deadline, policy: WaitPolicy, state: DealState,
            wait: Wait) -> Notice:
    deal = f"{state.deal.client} ({state.deal.deal_id}, {state.deal.value:,.2f} " \
           f"{state.deal.currency})"
    since = f"{wait.opened_at:%Y-%m-%d %H:%M %Z}"
    expiry = next((d.due_at for d in service.data.deadlines.for_thread(deadline.thread_id)
                   if d.wait_key == wait.wait_key and d.action == "expire"), None)
    texts = {
        "review.remind": f"Reminder: {deal} has waited for a review since {since}.",
        "review.escalate": f"Escalation: nobody has reviewed {deal} since {since}.",
        "review.expire": f"Expired: nobody reviewed {deal} in time; the deal ended.",
        "signature.remind": f"The signer of {deal} was reminded; the envelope was sent "
                            f"{since}.",
        "signature.expire": f"Expired: {deal} was not signed in time; the envelope was "
                            "voided and the deal ended.",
    }
    text = texts.get(deadline.name, f"{deadline.name} for {deal}")
    to = service.settings.escalation_contact if deadline.action == "escalate" else policy.notify
    event = {"remind": "reminder", "escalate": "escalated", "expire": "expired"}[
        deadline.action]
    return Notice(f"{policy.name}.{event}", text, to=to,
                  due_at=expiry if deadline.action != "expire" else deadline.due_at)
