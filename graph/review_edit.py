"""Edit before approve: a reviewer changes the terms the policy lets them change, and approves.

The answer is LangChain's HITL `edit` decision:
`{"decisions": [{"type": "edit", "edited_action": {"name": "approve_deal", "args": {...}}}]}`
with the name and arguments of the pending `action_requests[0]`. Only an approval
review takes an edit, and only of `EDITABLE` terms; anything else is refused
with a message naming what may be changed. The edited terms replace the deal's
in the state (the graph runs on from them like after any other resume), and the
review's audit entry records each term before and after.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from state.deal_state import DealState
from state.models import Amount, DealInput
from state.validation import first_error

# The terms a reviewer may change while approving (the policy): name → what it means.
EDITABLE = {"value": "the deal value, e.g. \"40000.00\"",
            "payment_terms_days": "days to pay, 0-365"}


class EditRefused(ValueError):
    """An edit that does not fit the pending review or the policy (nothing was changed)."""


class _Terms(BaseModel):
    """The editable terms' types and bounds (those of a new deal)."""

    model_config = ConfigDict(extra="forbid")
    value: Amount | None = None
    payment_terms_days: int | None = Field(default=None, ge=0, le=365, strict=True)


def approval_terms(deal: DealInput, default_terms_days: int) -> dict[str, Any]:
    """The terms an approval review shows, as strings and numbers (its action's args)."""
    return {"deal_id": deal.deal_id, "client": deal.client, "value": str(deal.value),
            "currency": deal.currency, "deal_type": deal.deal_type,
            "payment_terms_days": deal.terms_days(default_terms_days)}


def edited_terms(action: str, shown: Mapping[str, Any], edited: Any,
                 expected_action: str) -> dict[str, Any]:
    """The terms the edit changes (`name → new value`), checked against the policy."""
    if not isinstance(edited, dict) or edited.get("name") != expected_action:
        raise EditRefused(f"an edit must name the pending action {expected_action!r} in "
                          "edited_action.name")
    args = edited.get("args")
    if not isinstance(args, dict):
        raise EditRefused("an edit needs edited_action.args: the action's arguments, changed")
    unknown = sorted(set(args) - set(shown))
    if unknown:
        raise EditRefused(f"{action}: no argument {unknown[0]!r:.40} to edit")
    changed = {name: value for name, value in args.items() if shown.get(name) != value}
    refused = sorted(set(changed) - set(EDITABLE))
    if refused:
        raise EditRefused(f"{refused[0]} may not be changed in review; a reviewer may "
                          f"change {', '.join(EDITABLE)}")
    if not changed:
        raise EditRefused("the edit changes nothing: approve instead")
    try:
        _Terms.model_validate(changed)
    except ValidationError as exc:
        raise EditRefused(f"edited {first_error(exc, 'terms')}") from None
    return changed


def apply_terms(state: DealState, changes: Mapping[str, Any]) -> DealInput:
    """The deal with the edited terms, validated as a new deal would be."""
    try:
        return DealInput.model_validate({**state.deal.model_dump(), **changes})
    except ValidationError as exc:
        raise EditRefused(f"edited terms: {first_error(exc, 'deal')}") from None


def before_after(state: DealState, deal: DealInput,
                 default_terms_days: int) -> dict[str, dict[str, Any]]:
    """Each changed term's value before and after (the audit entry's detail)."""
    before = approval_terms(state.deal, default_terms_days)
    after = approval_terms(deal, default_terms_days)
    return {name: {"before": before[name], "after": after[name]}
            for name in EDITABLE if before[name] != after[name]}


def edit_answer(shown: Mapping[str, Any], changes: Mapping[str, Any], *, action: str,
                comment: str = "", reviewer: str | None = None) -> dict[str, Any]:
    """The HITL `edit` answer that approves `action` with `changes` to the `shown` args."""
    decision = {"type": "edit", "edited_action": {"name": action, "args": {**shown, **changes}},
                "message": comment}
    answer: dict[str, Any] = {"decisions": [decision]}
    if reviewer is not None:
        answer["reviewer"] = reviewer
    return answer
