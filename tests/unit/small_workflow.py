"""A small workflow of the unit tests' own, so they test mechanics, not the default's shape.

`intake` (desk) establishes `accepted` (or ends the deal `disqualified`);
`build` (works) and `draft` (paper) run in parallel after it; `dispatch`
(paper, on the `post` system) needs the draft; `await_ack` (recipient) is an
event step waiting for `ack.given` or `ack.refused` on the dispatch's ref,
with a reminder and an expiry; `bill` (money) needs the build and the ack.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from graph.step_spec import StepSpec
from graph.wait_policy import DeadlineSpec, SystemCall, WaitPolicy
from graph.workflow import Workflow
from state.deal_state import DealState
from tests.helpers import make_deal


class Out(BaseModel):
    """Every step's output: a reference, a flag, an event."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ref: str = "R-1"
    ok: bool = True
    event: str | None = None


def _node(state: DealState, run: Any) -> Out:
    return Out()


def step(name: str, agent: str, output: str, **extra: Any) -> StepSpec:
    """A step of `Out` whose node does nothing (the units never run nodes)."""
    return StepSpec(name, agent, _node, output, Out, f"Do {name}.", **extra)


ACK_EVENTS = ("ack.given", "ack.refused")
STEPS = (
    step("intake", "desk", "intake_out", summary=lambda o: f"intake {o.ref}",
         conditions=(("accepted", lambda o: o.ok),),
         outcome=lambda o: None if o.ok else "disqualified", approval_gated=False),
    step("build", "works", "build_out", requires=("accepted",)),
    step("draft", "paper", "draft_out", requires=("accepted",)),
    step("dispatch", "paper", "dispatch_out", requires=("draft_out",), system="post"),
    step("await_ack", "recipient", "ack_out", requires=("dispatch_out",), kind="event",
         events=ACK_EVENTS, handle="dispatch_out.ref", summary=lambda o: str(o.event),
         conditions=(("acked", lambda o: o.event == "ack.given"),),
         outcome=lambda o: "declined" if o.event == "ack.refused" else None,
         show=lambda o: o["event"] if o else "not acknowledged"),
    step("bill", "money", "bill_out", requires=("build_out", "acked"), system="ledger"),
)
ACK_WAIT = WaitPolicy("ack", "await_ack", (
    DeadlineSpec("remind", "the post nudges the recipient",
                 notice="Nudged {client} about {handle} (since {since}).",
                 call=SystemCall("nudge", Out, per_deadline=True), after=timedelta(hours=1)),
    DeadlineSpec("expire", "end the deal as expired", after=timedelta(days=1)),
), system="post", notify="desk")
SMALL = Workflow(STEPS, waits=(ACK_WAIT,))

INTAKE = Out(ref="I-1")
REFUSED_INTAKE = Out(ref="I-2", ok=False)
DONE = Out()
ACKED = Out(event="ack.given")
REFUSED = Out(event="ack.refused")


def small_state(value: str = "1000.00", currency: str = "USD", **outputs: Any) -> DealState:
    """A state of the small workflow with the given outputs (and reviews, failures…)."""
    return SMALL.state_schema(deal=make_deal(value=value, currency=currency), **outputs)
