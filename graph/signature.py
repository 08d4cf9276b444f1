"""The wait for the external e-signature event, as an interrupt node.

The thread stops here (`waiting_signature`) until it is resumed with
`signature.completed` or `signature.declined` (a string, or `{"event": ...}`),
or until its expiry deadline ends it as `signature.expired` (`graph.waiting`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agents.step_run import StepRun
from graph.waiting import is_expiry
from state.deal_state import DealState
from state.models import (
    SIGNATURE_EVENTS,
    SignatureEvent,
    SignatureEventName,
    SignatureOutcome,
)


class SignatureEventError(ValueError):
    """A resume value that is not a known signature event."""


def parse_signature_event(value: Any) -> SignatureEventName:
    """Accept `"signature.completed"` or `{"event": "signature.completed"}`."""
    event = value.get("event") if isinstance(value, dict) else value
    for known in SIGNATURE_EVENTS:
        if event == known:
            return known
    raise SignatureEventError(
        f"unknown signature event {event!r:.80} (expected: {', '.join(SIGNATURE_EVENTS)})"
    )


def signature_request(state: DealState) -> dict[str, Any]:
    """The interrupt payload of the signature wait."""
    envelope = state.envelope
    return {
        "type": "signature",
        "deal_id": state.deal.deal_id,
        "envelope_id": envelope.envelope_id if envelope else None,
        "signer": envelope.signer_email if envelope else None,
        "expected_events": list(SIGNATURE_EVENTS),
    }


def signature_resolution(value: Any) -> dict[str, Any]:
    """The stored resolution of a signature wait: `{"event": "signature.completed"}`."""
    return {"event": parse_signature_event(value)}


def await_signature(state: DealState, run: StepRun) -> SignatureEvent:
    """Wait for the signer's answer or the expiry, then record it (state, facts, audit)."""
    request = signature_request(state)
    if run.wait is None:
        raise TypeError("await_signature is an event step: its run needs a wait")
    resolution = run.wait.ask(request, signature_resolution, actor="esign")
    event: SignatureOutcome = ("signature.expired" if is_expiry(resolution)
                               else parse_signature_event(resolution))
    run.write("signature", {"event": event})
    return SignatureEvent(event=event, received_at=datetime.now(UTC))
