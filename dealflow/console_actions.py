"""What an operator does to one deal (the console's actions; the CLI can call them too).

Each action is a function of a `DealService`, the deal and the operator's name
(the token's name in the console). It checks that the deal is in a state for
it, else raises a `DealflowError` whose one line says why (`NotWaiting`,
`Busy`, `InvalidInput`) and changes nothing; it records what it does in the
audit trail under the operator's name (`console.<action>`, with the comment as
the reason); and it returns a `Done`: one line for the page, and the
`dealflow.drive` job (`FollowUp`) that carries the work on. The service queues
that job for its workers, as the API does with a review; the CLI runs it in
its own process with `run_now`.

- `retry_step`: the failure review's "retry" (what `dealflow resume --decision
  retry` does), claimed at once in the operator's name.
- `recover_deal`: continue a thread that stopped mid-run with nobody driving it
  (`dealflow recover`, for one deal).
- `fork_deal`: time travel. From a past checkpoint of the deal's thread, with
  edited terms (value, payment terms): LangGraph's `update_state` writes the
  new terms as of that checkpoint, a new branch of the thread, and the thread
  runs on from there (effects with other terms are new effects; see
  `state.effects`).

Cancelling is `dealflow.console_cancel.cancel_deal`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.errors import InvalidUpdateError
from pydantic import ValidationError

from dealflow.api import DealService
from dealflow.errors import Busy, InvalidInput, NotFound, NotWaiting
from dealflow.reports import DealReport, has_run, status_of
from graph.nodes import SUPERVISOR
from graph.review import RETRY_ACTION
from graph.review_edit import EDITABLE
from state.audit import Origin
from state.leases import thread_is_held
from state.models import DealInput
from state.numerals import whole_number
from state.registry import DealRow
from state.validation import first_error

STUCK = ("running", "failed")  # what a thread that stopped mid-run reads as


@dataclass(frozen=True)
class FollowUp:
    """The `dealflow.drive` job that carries an action on: its action, thread and payload."""

    action: str
    thread_id: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Done:
    """What an action did, in one line, and the job that carries it on (if any)."""

    message: str
    follow_up: FollowUp | None = None


def audit_action(service: DealService, row: DealRow, operator: str, action: str,
                 reason: str = "", detail: dict[str, Any] | None = None) -> None:
    """Record in the deal's audit trail that `operator` did `action` (`console.<action>`)."""
    service.data.audit.append(
        Origin(row.deal_id, agent="operator", step=None, thread_id=row.thread_id),
        f"console.{action}", actor=operator[:200], reason=reason[:2000] or None,
        detail=detail or {})


def current_report(service: DealService, ref: str) -> DealReport:
    """The deal's status report; `NotWaiting` while its first step has not run."""
    row = service.deal(ref)  # NotFound for an unknown deal
    try:
        return service.status(row.thread_id)
    except NotFound:
        raise NotWaiting(f"deal {row.deal_id} has not started yet; try again in a moment") \
            from None


def retry_step(service: DealService, ref: str, operator: str, comment: str = "") -> Done:
    """Retry the failed step a failure review waits on, in `operator`'s name."""
    report = current_report(service, ref)
    requests = (report.pending or {}).get("action_requests") or [{}]
    if report.status != "waiting_review" or requests[0].get("name") != RETRY_ACTION:
        raise NotWaiting(f"deal {report.deal_id} has no failed step waiting for a retry; "
                         f"it is {report.status}")
    answer = {"decision": "retry", "comment": comment, "reviewer": operator}
    claimed = service.claim_review(report.thread_id, answer)  # Decided if someone was first
    steps = ", ".join(f["step"] for f in report.context.get("failures") or []) or "the step"
    if not claimed.fresh:
        return Done(f"the retry of {steps} was recorded already; the workers apply it")
    audit_action(service, claimed.row, operator, "retry", comment, {"steps": steps})
    return Done(f"retry of {steps} recorded; the deal moves on",
                FollowUp("resume", report.thread_id, {"answer": answer}))


def recover_deal(service: DealService, ref: str, operator: str) -> Done:
    """Continue the deal's thread if it stopped mid-run and no live process drives it."""
    row = service.deal(ref)
    snapshot = service.snapshot(row.thread_id)
    status = status_of(snapshot, service.workflow) if has_run(snapshot) else "running"
    if status not in STUCK:
        raise NotWaiting(f"deal {row.deal_id} is not stuck: it is {status}; "
                         "nothing to recover")
    if thread_is_held(service.pool, row.thread_id):
        raise Busy(f"deal {row.deal_id} is running in a live process now; nothing to recover")
    audit_action(service, row, operator, "recover", detail={"status": status})
    return Done(f"deal {row.deal_id} queued to continue from its last checkpoint",
                FollowUp("continue", row.thread_id))


def fork_deal(service: DealService, ref: str, checkpoint_id: str, terms: Mapping[str, str],
              operator: str, comment: str = "") -> Done:
    """Fork the deal's thread from `checkpoint_id` with the edited `terms`, then run it on.

    `terms` holds what the form typed for each of `EDITABLE` (blank: unchanged).
    The checkpoint must be one where the supervisor decides next (between steps).
    """
    row = service.deal(ref)
    changes = _typed_terms(terms)
    checkpoint_id = checkpoint_id.strip()
    if not checkpoint_id or len(checkpoint_id) > 100 or "\x00" in checkpoint_id:
        raise InvalidInput("choose a checkpoint to fork from")
    with service.holding(row.thread_id, wait=False):  # Busy while a process drives it
        past = service.graph.get_state({"configurable": {
            "thread_id": row.thread_id, "checkpoint_id": checkpoint_id}})
        if past.created_at is None or not has_run(past):
            raise InvalidInput(f"deal {row.deal_id} has no checkpoint {checkpoint_id!r:.60}")
        if tuple(past.next) != (SUPERVISOR,):
            raise InvalidInput(f"checkpoint {checkpoint_id:.60} is in the middle of a step; "
                               "fork from one where the supervisor decides next")
        held = past.values["deal"]
        before = held if isinstance(held, DealInput) else DealInput.model_validate(held)
        try:
            edited = DealInput.model_validate({**before.model_dump(), **changes})
        except ValidationError as exc:
            raise InvalidInput(f"edited terms: {first_error(exc, 'deal')}") from None
        diff = {name: {"before": str(getattr(before, name)), "after": str(getattr(edited, name))}
                for name in EDITABLE if getattr(before, name) != getattr(edited, name)}
        if not diff:
            raise InvalidInput("the fork changes no term: edit the value or the payment terms")
        try:
            forked = service.graph.update_state(past.config, {"deal": edited})
        except InvalidUpdateError as exc:
            raise InvalidInput(f"checkpoint {checkpoint_id:.60} cannot be forked: {exc}") \
                from None
        service.registry.set_status(row.thread_id, "running")
        audit_action(service, row, operator, "fork", comment, {
            "from_checkpoint": checkpoint_id, "edited": diff,
            "checkpoint_id": forked["configurable"].get("checkpoint_id")})
    said = ", ".join(f"{name} {d['before']} → {d['after']}" for name, d in diff.items())
    return Done(f"forked from checkpoint {checkpoint_id[:13]}… with {said}; the deal runs on "
                "from there", FollowUp("continue", row.thread_id))


def _typed_terms(terms: Mapping[str, str]) -> dict[str, Any]:
    """The edited terms as a deal takes them: blank fields left out, numbers checked."""
    changes: dict[str, Any] = {}
    for name, raw in terms.items():
        text = (raw or "").strip()
        if name not in EDITABLE or not text:
            continue
        try:
            changes[name] = whole_number(text) if name == "payment_terms_days" else text
        except ValueError as exc:
            raise InvalidInput(f"{name}: {exc}") from None
    return changes


def run_now(service: DealService, follow_up: FollowUp) -> str:
    """Run an action's follow-up job in this process (the CLI's way); the status reached."""
    if follow_up.action == "resume":
        return service.resume(follow_up.thread_id, follow_up.payload["answer"]).status
    if follow_up.action == "continue":
        return service.continue_thread(follow_up.thread_id).status
    raise ValueError(f"unknown follow-up {follow_up.action!r}")
