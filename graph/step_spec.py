"""One step of the process, declared once: the `StepSpec` the `Workflow` is made of.

A step names its agent, node, system of record, output (field and model), the
conditions it establishes, the outcome it may imply and how the CLI summarises
it. An `event` step waits for the outside world: it declares the events it
takes (`dealflow event`, `DealService.event`), the fact that names what it
waits on (its `handle`, shown in status and handed to its wait's system calls)
and how a deal's context shows its output; everything that shows or drives the
wait derives from that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from state.deal_state import DealState
from state.models import Outcome, Status

Condition = Callable[[DealState], bool]
WAITING_EVENT: Status = "waiting_event"
"""The status of a thread stopped at an event step that declares no status of its own."""


@dataclass(frozen=True)
class StepSpec:
    """One step of the process, declared once.

    `node(state, run) -> output_model` does the work; the builder stores the
    result in the state field `output`. The step establishes the condition
    named `output` when it is done, and each of `conditions` (name, predicate
    on the output); other steps `require` conditions by name. `outcome` maps
    the output to a terminal outcome, if it implies one. An `event` step waits
    (with `interrupt`) in `waiting_status` (default `waiting_event`) for one of
    `events`, delivered as `{"event": name}`; its output records the event it
    took in a field `event`. `handle` (`envelope.envelope_id`: a fact and its
    field) names what it waits on; `show` turns the output's JSON data (None
    before it is done) into what a deal's context shows (default: the data).
    `new_deals_only`: a step added to a running deployment runs only for deals
    started on a declaration that had it (`graph.versions`); by default it
    applies to every deal that has not passed its place.
    """

    name: str
    agent: str
    node: Callable[..., BaseModel]
    output: str
    output_model: type[BaseModel]
    description: str
    requires: tuple[str, ...] = ()
    system: str | None = None
    summary: Callable[[Any], str] = field(default=lambda output: "", compare=False)
    conditions: tuple[tuple[str, Callable[[Any], bool]], ...] = ()
    outcome: Callable[[Any], Outcome | None] | None = None
    kind: Literal["agent", "event"] = "agent"
    waiting_status: Status | None = None
    approval_gated: bool = True
    events: tuple[str, ...] = ()
    handle: str | None = None
    show: Callable[[Any], Any] | None = field(default=None, compare=False)
    new_deals_only: bool = False

    def done(self, state: DealState) -> bool:
        """Whether the step's output is already in the state."""
        return getattr(state, self.output, None) is not None

    def describe(self, output: Any) -> str:
        """The CLI's one-line summary of an output (a model, or its JSON data)."""
        if not isinstance(output, self.output_model):
            output = self.output_model.model_validate(output)
        return self.summary(output)

    def shown(self, data: Any) -> Any:
        """What a deal's context shows for the output's JSON data (None: not done yet)."""
        return self.show(data) if self.show is not None else data

    @property
    def waits_in(self) -> Status | None:
        """The status of a thread stopped at this step (None: the step does not wait)."""
        if self.kind != "event":
            return None
        return self.waiting_status or WAITING_EVENT

    @property
    def topic(self) -> str:
        """What the step waits for, in a word: `signature` for `signature.completed`."""
        return self.events[0].split(".", 1)[0] if self.events else self.name

    @property
    def handle_fact(self) -> str:
        """The fact that holds the handle (`envelope`; empty if the step declares none)."""
        return (self.handle or "").partition(".")[0]

    @property
    def handle_field(self) -> str:
        """The handle's field in its fact (`envelope_id`; empty if the step declares none)."""
        return (self.handle or "").partition(".")[2]

    def handle_of(self, facts: Any) -> str | None:
        """The handle's value in `facts` (a state, or its JSON data), if it is there yet."""
        fact, attribute = self.handle_fact, self.handle_field
        held = facts.get(fact) if isinstance(facts, dict) else getattr(facts, fact, None)
        value = held.get(attribute) if isinstance(held, dict) else getattr(held, attribute,
                                                                            None)
        return str(value) if value is not None and attribute else None

    def took(self, output: Any) -> str | None:
        """The event the step's output records (None if it is not done)."""
        event = getattr(output, "event", None)
        return str(event) if event is not None else None
