"""The workflow, declared once: each step with everything that belongs to it, and the policies.

A `StepSpec` (`graph.step_spec`) is the only registry of a step: its agent,
node, system of record, output (field and model), the conditions it
establishes, the outcome it may imply, how the CLI summarises it, and whether
it waits for an event (which events, on what). A `WaitPolicy` holds a wait's
deadlines: their delays, notices and calls on the outside world. The router,
the LLM supervisor's tools, prompt and guard, the graph builder, the state
schema, the checkpoint allowlist, the CLI's rendering and hints, MCP's deal
context, the inbox, deadlines, spans, audit and failures all derive from the
`Workflow`. Adding a step means writing its node and declaring it here (or
`DEFAULT_WORKFLOW.with_step(...)` in your own code). A changed declaration
under deals in flight says what changed (`renamed`, `removed`, a step's
`new_deals_only`); each deal follows `for_deal(state)` (`graph.versions`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any

from pydantic import create_model

from agents.contract.node import generate_contract, send_for_signature
from agents.finance.node import generate_invoice
from agents.lead.node import qualify_lead
from agents.project.node import create_project
from graph import versions
from graph.declaration_checks import declaration_errors
from graph.nodes import HUMAN_REVIEW, SUPERVISOR, handled_step
from graph.signature import await_signature
from graph.step_spec import Condition, StepSpec
from graph.wait_policy import DeadlineSpec, SystemCall, WaitPolicy
from state.config import Settings
from state.deal_state import DealState
from state.models import (
    SIGNATURE_EVENTS,
    Contract,
    Envelope,
    Invoice,
    Outcome,
    Project,
    Qualification,
    SignatureEvent,
    SignerReminder,
    Status,
)

__all__ = ["DEFAULT_WORKFLOW", "STEPS", "StepSpec", "Workflow", "WorkflowError"]


class WorkflowError(ValueError):
    """The declaration contradicts itself (a duplicate step, an unknown condition)."""


@dataclass(frozen=True)
class Workflow:
    """The declared steps, in order, the waits' deadlines, and everything derived from them.

    `renamed` (old name → new) and `removed` declare the steps that deals in
    flight may still have: a deal waiting in a renamed step finishes there.
    """

    steps: tuple[StepSpec, ...]
    waits: tuple[WaitPolicy, ...] = ()
    renamed: Mapping[str, str] = field(default_factory=dict, hash=False)
    removed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Refuse a declaration that contradicts itself, naming the problem."""
        object.__setattr__(self, "renamed", MappingProxyType(dict(self.renamed)))
        problems = declaration_errors(self)
        if problems:
            raise WorkflowError(problems[0])

    # -- declaration ------------------------------------------------------------
    def step(self, name: str) -> StepSpec:
        """The declared step called `name` (or renamed from it)."""
        spec = self.declared_step(name)
        if spec is None:
            raise KeyError(f"unknown step {name!r}")
        return spec

    def declared_step(self, name: str) -> StepSpec | None:
        """The declared step called `name` (or renamed from it), if there is one."""
        name = self.renamed.get(name, name)
        return next((spec for spec in self.steps if spec.name == name), None)

    @cached_property
    def version(self) -> str:
        """The declaration's version: a digest stable across processes (`graph.versions`)."""
        return versions.version_of(self)

    def for_deal(self, state: DealState) -> Workflow:
        """The declaration `state`'s deal follows (the steps that apply to it)."""
        return versions.for_deal(self, state)

    def with_step(self, spec: StepSpec, *, after: str | None = None,
                  required_by: Iterable[str] = (), wait: WaitPolicy | None = None
                  ) -> Workflow:
        """A copy of the workflow with `spec` added (after step `after`, else last).

        Each step named in `required_by` comes to require the new step's output;
        `wait` declares the deadlines of an event step's wait.
        """
        needing = set(required_by)
        steps = [replace(s, requires=(*s.requires, spec.output)) if s.name in needing else s
                 for s in self.steps]
        position = len(steps) if after is None else [s.name for s in steps].index(after) + 1
        return replace(self, steps=(*steps[:position], spec, *steps[position:]),
                       waits=(*self.waits, *((wait,) if wait else ())))

    @cached_property
    def conditions(self) -> dict[str, Condition]:
        """Every condition a step can require, by name, as a predicate on the state."""
        found: dict[str, Condition] = {}
        for spec in self.steps:
            found[spec.output] = spec.done
            for name, holds in spec.conditions:
                found[name] = _on_output(spec.output, holds)
        return found

    @cached_property
    def state_schema(self) -> type[DealState]:
        """`DealState` with the deal's declaration, and a field for every output it lacks."""
        missing: dict[str, Any] = {
            spec.output: (spec.output_model | None, None) for spec in self.steps
            if spec.output not in DealState.model_fields}
        if not missing:
            return versions.VersionedState
        return create_model(f"DealState_{'_'.join(missing)}", __base__=versions.VersionedState,
                            **missing)

    # -- who does what ----------------------------------------------------------
    def agent_of(self, node: str) -> str:
        """The agent behind a graph node (a step's error handler: the step's agent)."""
        node = handled_step(node) or node
        if node == SUPERVISOR:
            return "supervisor"
        if node == HUMAN_REVIEW:
            return "reviewer"
        spec = self.declared_step(node)
        return spec.agent if spec is not None else "graph"

    def system_of(self, node: str) -> str | None:
        """The system of record a step's node acts on (none for anything else)."""
        spec = self.declared_step(node)
        return spec.system if spec is not None else None

    @property
    def agents(self) -> tuple[str, ...]:
        """Every agent name that can appear in the audit trail and spans."""
        return tuple(dict.fromkeys([*(spec.agent for spec in self.steps), "supervisor",
                                    "reviewer"]))

    @property
    def effect_steps(self) -> tuple[StepSpec, ...]:
        """The steps that act on a system of record."""
        return tuple(spec for spec in self.steps if spec.system is not None)

    # -- waits ----------------------------------------------------------------
    def waiting_status(self, node: str) -> Status | None:
        """The status of a thread stopped at `node`'s interrupt."""
        if node == HUMAN_REVIEW:
            return "waiting_review"
        spec = self.declared_step(node)
        return spec.waits_in if spec is not None else None

    def wait_policy(self, node: str) -> WaitPolicy | None:
        """The deadlines of the wait at `node` (or the node renamed from it), if it has any."""
        node = self.renamed.get(node, node)
        return next((policy for policy in self.waits if policy.node == node), None)

    def wait_name(self, node: str) -> str:
        """How the wait at `node` is called (`review`, `signature`): its policy's name."""
        policy = self.wait_policy(node)
        if policy is not None:
            return policy.name
        return (self.waiting_status(node) or "event").removeprefix("waiting_")

    def answered_by(self, node: str) -> str:
        """Who answers the wait at `node` when nobody else is named: its system, or its agent."""
        policy = self.wait_policy(node)
        return policy.system if policy and policy.system else self.agent_of(node)

    @property
    def events(self) -> tuple[str, ...]:
        """Every event the workflow's event steps take from outside, in declared order."""
        return tuple(event for spec in self.steps for event in spec.events)

    def event_step(self, event: str) -> StepSpec:
        """The event step that takes `event`; a `KeyError` saying what is expected otherwise."""
        for spec in self.steps:
            if event in spec.events:
                return spec
        topics = " or ".join(dict.fromkeys(s.topic for s in self.steps if s.events)) or "an"
        raise KeyError(f"unknown {topics} event {event!r:.80} "
                       f"(expected: {', '.join(self.events) or 'none declared'})")

    # -- the rules --------------------------------------------------------------
    def unmet(self, spec: StepSpec, state: DealState) -> list[str]:
        """The conditions `spec` still waits for."""
        return [name for name in spec.requires if not self.conditions[name](state)]

    def ready_steps(self, state: DealState) -> list[StepSpec]:
        """Steps not done whose requirements all hold (they may run in parallel)."""
        return [spec for spec in self.steps if not spec.done(state) and not
                self.unmet(spec, state)]

    def needs_approval(self, state: DealState, settings: Settings) -> bool:
        """The large-deal policy: over the threshold (in USD) and not yet approved."""
        return state.deal.value_usd > settings.review_threshold_usd and not approved(state)

    def outcome_of(self, state: DealState) -> Outcome | None:
        """The terminal outcome the state has reached, if any (first rule wins)."""
        if state.reviews and state.reviews[-1].decision in ("reject", "expire"):
            return "rejected" if state.reviews[-1].decision == "reject" else "expired"
        for spec in self.steps:
            output = getattr(state, spec.output, None)
            if spec.outcome is not None and output is not None:
                outcome = spec.outcome(output)
                if outcome is not None:
                    return outcome
        if all(spec.done(state) for spec in self.steps):
            return "completed"
        return None


def _on_output(output: str, holds: Callable[[Any], bool]) -> Condition:
    def condition(state: DealState) -> bool:
        value = getattr(state, output, None)
        return value is not None and holds(value)

    return condition


SIGNATURE_OUTCOMES: dict[str, Outcome] = {"signature.declined": "declined",
                                          "signature.expired": "expired"}


def approved(state: DealState) -> bool:
    """Whether a person approved the deal."""
    return any(r.kind == "approval" and r.decision == "approve" for r in state.reviews)


DEFAULT_WORKFLOW = Workflow((
    StepSpec("qualify_lead", "lead", qualify_lead, "qualification", Qualification,
             "Score the lead 0-10 and update the CRM lead record.", system="crm",
             summary=lambda q: f"score {q.score}/10, "
             + ("qualified" if q.qualified else "not qualified"),
             conditions=(("qualified", lambda q: q.qualified),),
             outcome=lambda q: None if q.qualified else "disqualified",
             approval_gated=False),
    StepSpec("create_project", "project", create_project, "project", Project,
             "Create the delivery project and its tasks from the deal type's template.",
             requires=("qualified",), system="pm",
             summary=lambda p: f"{p.project_id} with {len(p.tasks)} tasks"),
    StepSpec("generate_contract", "contract", generate_contract, "contract", Contract,
             "Render the contract from the template and store it with its hash.",
             requires=("qualified",), system="contracts",
             summary=lambda c: f"{c.contract_id} sha256 {c.sha256[:12]}…"),
    StepSpec("send_for_signature", "contract", send_for_signature, "envelope", Envelope,
             "Send the contract to the signer as an e-signature envelope.",
             requires=("contract",), system="esign",
             summary=lambda e: f"envelope {e.envelope_id} to {e.signer_email}"),
    StepSpec("await_signature", "signer", await_signature, "signature", SignatureEvent,
             "Wait for signature.completed or signature.declined.", requires=("envelope",),
             summary=lambda e: e.event,
             conditions=(("signature_completed", lambda e: e.event == "signature.completed"),),
             outcome=lambda e: SIGNATURE_OUTCOMES.get(e.event),
             kind="event", waiting_status="waiting_signature", events=SIGNATURE_EVENTS,
             handle="envelope.envelope_id",
             show=lambda e: e["event"] if e else "not signed"),
    StepSpec("generate_invoice", "finance", generate_invoice, "invoice", Invoice,
             "Issue the invoice (net terms, tax, gap-free number).",
             requires=("project", "signature_completed"), system="billing",
             summary=lambda i: f"invoice {i.number} total {i.total} {i.currency} due {i.due_on}"),
), waits=(
    WaitPolicy("review", HUMAN_REVIEW, (
        DeadlineSpec("remind", "notify the reviewers again",
                     notice="Reminder: {deal} has waited for a review since {since}."),
        DeadlineSpec("escalate", "notify the escalation contact (audited)",
                     notice="Escalation: nobody has reviewed {deal} since {since}."),
        DeadlineSpec("expire", "end the deal as expired; nothing further runs",
                     notice="Expired: nobody reviewed {deal} in time; the deal ended."),
    )),
    WaitPolicy("signature", "await_signature", (
        DeadlineSpec("remind", "the e-sign system reminds the signer",
                     notice="The signer of {deal} was reminded; the envelope was sent {since}.",
                     call=SystemCall("remind_signer", SignerReminder, lookup="reminder",
                                     per_deadline=True)),
        DeadlineSpec("expire", "void the envelope and end the deal as expired",
                     notice="Expired: {deal} was not signed in time; the envelope was voided "
                     "and the deal ended.",
                     call=SystemCall("void_envelope", Envelope, args=(("reason", "expired"),))),
    ), system="esign", notify="sales"),
))
STEPS = DEFAULT_WORKFLOW.steps
