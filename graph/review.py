"""Human review as an interrupt node, with a payload in LangChain's HITL request shape.

Two kinds of review stop a thread: the approval of a large deal (decisions
`approve` / `reject`) and a step that failed after its retries (`retry` /
`reject`). Resume with `Command(resume={"decision": ..., "comment": ...})`, or
with LangChain's HITL response `{"decisions": [{"type": "approve"}]}`, where
approving a failure review's `retry_failed_step` action means `retry`. An
approval also takes HITL's `edit` decision: approve on edited terms
(`graph.review_edit`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, ValidationError

from graph.nodes import HUMAN_REVIEW
from graph.review_edit import (
    EDITABLE,
    EditRefused,
    apply_terms,
    approval_terms,
    before_after,
    edited_terms,
)
from graph.runtime import ContextResolver, DealContext, once_key, origin_of
from graph.wait_policy import WaitPolicy
from graph.waiting import WaitRun, is_expiry, wait_key_of
from state.config import Settings
from state.deal_state import DealState
from state.models import Comment, Name, ReviewChoice, ReviewDecision, ReviewKind
from state.outbox import Notice
from state.validation import first_error
from state.waits import EXPIRED
from state.work import StepWork

if TYPE_CHECKING:  # langchain's agents package: imported by the review node when it asks
    from langchain.agents.middleware.human_in_the_loop import HITLRequest

ReviewNode = Callable[[DealState, Runtime[DealContext], StepWork], dict[str, Any]]

APPROVE_ACTION = "approve_deal"
RETRY_ACTION = "retry_failed_step"
ESCALATION_ACTION = "resolve_escalation"
ALLOWED: dict[ReviewKind, tuple[ReviewChoice, ...]] = {
    "approval": ("approve", "reject"),
    "failure": ("retry", "reject"),
    "escalation": ("approve", "reject"),
}


class ReviewAnswerError(ValueError):
    """A resume value that is malformed or does not fit the pending review."""


class ReviewAnswer(BaseModel):
    """A reviewer's answer, as given to `Command(resume=...)`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: ReviewChoice
    comment: Comment = ""
    reviewer: Name = "reviewer"
    edits: dict[str, Any] = {}  # approve on these terms (`graph.review_edit`)


def review_kind(state: DealState) -> ReviewKind:
    """Which review the state calls for: failure, then escalation, then approval."""
    if state.failures:
        return "failure"
    return "escalation" if state.escalation else "approval"


def review_request(state: DealState, settings: Settings) -> HITLRequest:
    """The interrupt payload: one action request and its review config (HITL shape)."""
    from langchain.agents.middleware import human_in_the_loop as hitl

    deal = state.deal
    if review_kind(state) == "escalation" and state.escalation is not None:
        action = hitl.ActionRequest(
            name=ESCALATION_ACTION,
            args={"deal_id": deal.deal_id, "client": deal.client,
                  "reason": state.escalation.reason,
                  "requested_by": state.escalation.requested_by,
                  "history": list(state.escalation.history),
                  "completed_steps": list(state.completed_steps)},
            description=(
                f"The supervisor handed {deal.client} ({deal.deal_id}) to a person: "
                f"{state.escalation.reason}. Approve to let the workflow rules finish the "
                "deal, or reject to end it."
            ),
        )
    elif review_kind(state) == "failure":
        failures = [f.model_dump(mode="json") for f in state.failures.values()]
        steps = ", ".join(sorted(state.failures))
        action = hitl.ActionRequest(
            name=RETRY_ACTION,
            args={"deal_id": deal.deal_id, "client": deal.client, "failures": failures},
            description=(
                f"{steps} still failed after {settings.max_attempts} attempts "
                f"({failures[0]['error']}). Approve to retry the failed step only, "
                "or reject to end the deal."
            ),
        )
    else:
        action = hitl.ActionRequest(
            name=APPROVE_ACTION,
            args=approval_args(state, settings),
            description=(
                f"{deal.client}: {deal.value:,.2f} {deal.currency} is over the "
                f"{settings.review_threshold_usd:,.0f} USD approval threshold. "
                f"Approve to continue, edit ({', '.join(EDITABLE)}) and approve, "
                "or reject to end the deal."
            ),
        )
    decisions: list[Any] = ["approve", "edit", "reject"] if action["name"] == APPROVE_ACTION \
        else ["approve", "reject"]
    config = hitl.ReviewConfig(action_name=action["name"], allowed_decisions=decisions)
    return hitl.HITLRequest(action_requests=[action], review_configs=[config])


def approval_args(state: DealState, settings: Settings) -> dict[str, Any]:
    """What an approval review shows: the deal's terms and its lead score."""
    return {**approval_terms(state.deal, settings.payment_terms_days),
            "score": state.qualification.score if state.qualification else None}


def parse_review_answer(value: Any, kind: ReviewKind,
                        shown: dict[str, Any] | None = None) -> ReviewAnswer:
    """Validate a resume value against the pending review, or raise a clear error.

    `shown`: the pending action's args, which an `edit` decision is checked against.
    """
    if isinstance(value, str):
        value = {"decision": value}
    if isinstance(value, list):
        value = _from_human_response(value, kind)
    if isinstance(value, dict) and "decisions" in value:
        value = _from_hitl_response(value, kind, shown or {})
    if not isinstance(value, dict):
        raise ReviewAnswerError(
            f"review answer must be an object like {{'decision': 'approve'}}, got {value!r:.80}"
        )
    try:
        answer = ReviewAnswer.model_validate(value)
    except ValidationError as exc:
        raise ReviewAnswerError(f"review answer {first_error(exc, 'answer')}") from None
    if answer.decision not in ALLOWED[kind]:
        raise ReviewAnswerError(
            f"decision {answer.decision!r} does not fit the pending {kind} review "
            f"(allowed: {', '.join(ALLOWED[kind])})"
        )
    return answer


def _from_human_response(value: list[Any], kind: ReviewKind) -> dict[str, Any]:
    """LangGraph's older `HumanResponse` list (what LangChain's Agent Inbox sends).

    `accept` approves (retries, for a failed step), `ignore` rejects; a text
    `response` or an `edit` cannot decide a review here and is refused.
    """
    if len(value) != 1 or not isinstance(value[0], dict):
        raise ReviewAnswerError("a HumanResponse answer must be a list of exactly one response")
    chosen, args = value[0].get("type"), value[0].get("args")
    decisions = {"accept": "retry" if kind == "failure" else "approve", "ignore": "reject"}
    if chosen not in decisions:
        raise ReviewAnswerError(f"HumanResponse type {chosen!r:.40} cannot decide this review "
                                "(allowed: accept, ignore)")
    return {"decision": decisions[chosen], "comment": args if isinstance(args, str) else ""}


def _from_hitl_response(value: dict[str, Any], kind: ReviewKind,
                        shown: dict[str, Any]) -> dict[str, Any]:
    decisions = value.get("decisions")
    if not isinstance(decisions, list) or len(decisions) != 1 or not isinstance(
        decisions[0], dict
    ):
        raise ReviewAnswerError("HITL response must hold exactly one decision")
    chosen = decisions[0]
    if chosen.get("type") == "edit":
        if kind != "approval":
            raise ReviewAnswerError(f"an edit fits only an approval review, not this {kind} "
                                    "review (allowed: approve, reject)")
        try:
            edits = edited_terms(APPROVE_ACTION, shown, chosen.get("edited_action"),
                                 APPROVE_ACTION)
        except EditRefused as exc:
            raise ReviewAnswerError(str(exc)) from None
        return {"decision": "approve", "comment": str(chosen.get("message", "")),
                "edits": edits, **_reviewer_of(value)}
    kind_map = {"approve": "retry" if kind == "failure" else "approve", "reject": "reject"}
    if chosen.get("type") not in kind_map:
        raise ReviewAnswerError(
            f"HITL decision type {chosen.get('type')!r} is not supported here "
            f"(allowed: approve, {'edit, ' if kind == 'approval' else ''}reject)"
        )
    return {"decision": kind_map[chosen["type"]], "comment": str(chosen.get("message", "")),
            **_reviewer_of(value)}


def _reviewer_of(value: dict[str, Any]) -> dict[str, Any]:
    """Who answered, if the HITL response says (the API and the CLI add it)."""
    return {"reviewer": value["reviewer"]} if "reviewer" in value else {}


def review_notice(state: DealState, request: HITLRequest) -> Notice:
    """The announcement of a review that opens (to the reviewers)."""
    description = request["action_requests"][0].get("description") or ""
    return Notice("review.requested", f"Review needed for {state.deal.client} "
                  f"({state.deal.deal_id}): {description}", to="reviewers")


def make_human_review(contexts: ContextResolver, policy: WaitPolicy | None = None
                      ) -> ReviewNode:
    """The review node: stop for a person's decision, record it (a retry clears failures).

    `policy` holds the review's deadlines (`graph.wait_policy`): an expiry that
    wins the wait ends the deal as `expired`.
    """
    def human_review(state: DealState, runtime: Runtime[DealContext],
                     work: StepWork) -> dict[str, Any]:
        """Ask a person (an interrupt), validate the answer, record and audit it."""
        context = contexts(runtime)
        origin = origin_of(runtime, state.deal.deal_id, "reviewer", HUMAN_REVIEW)
        kind = review_kind(state)
        request = review_request(state, context.settings)
        wait = WaitRun(policy, origin, wait_key_of(runtime), context.data, context.settings,
                       work)
        shown = dict(request["action_requests"][0]["args"])
        resolution = wait.ask(dict(request), lambda raw: parse_review_answer(raw, kind, shown)
                              .model_dump(), notice=review_notice(state, request))
        edits: dict[str, Any] = {}
        if is_expiry(resolution):
            decision = ReviewDecision(
                kind=kind, decision="expire", reviewer="deadline",
                comment=f"nobody decided before {resolution[EXPIRED].get('due_at')}",
                steps=tuple(sorted(state.failures)), decided_at=datetime.now(UTC))
        else:
            answer = ReviewAnswer.model_validate(resolution)
            edits = answer.edits
            decision = ReviewDecision(
                kind=kind, decision=answer.decision, comment=answer.comment,
                reviewer=answer.reviewer, steps=tuple(sorted(state.failures)),
                decided_at=datetime.now(UTC),
            )
        update = _update_for(state, kind, decision)
        detail: dict[str, Any] = {"kind": kind, "decision": decision.decision,
                                  "steps": list(decision.steps)}
        if edits:
            update["deal"] = apply_terms(state, edits)
            detail["edited"] = before_after(state, update["deal"],
                                            context.settings.payment_terms_days)
        context.data.audit.append(
            origin, "review.decision",
            actor=decision.reviewer, reason=decision.comment or None,
            detail=detail, dedupe_key=once_key(runtime, "review"), work=work,
        )
        return update

    return human_review


def _update_for(state: DealState, kind: ReviewKind, decision: ReviewDecision) -> dict[str, Any]:
    update: dict[str, Any] = {"reviews": [decision]}
    if decision.decision == "retry":
        update["failures"] = dict.fromkeys(state.failures)
    if kind == "escalation":
        update["escalation"] = None
        if decision.decision == "approve":
            update["supervisor"] = "rules"  # a person took over: the rules finish the deal
    return update
