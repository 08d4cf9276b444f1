"""The typed state that flows between the graph's nodes.

Fields written by parallel nodes have reducers; everything else is written by
exactly one node per super-step.
"""

from __future__ import annotations

import operator
from typing import Annotated, Literal, get_args

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from pydantic import BaseModel, ConfigDict

from state.models import (
    Contract,
    DealInput,
    Envelope,
    Escalation,
    Failure,
    Invoice,
    LLMUsage,
    Project,
    Qualification,
    ReviewDecision,
    SignatureEvent,
)

Outcome = Literal["completed", "disqualified", "declined", "rejected"]
SupervisorMode = Literal["rules", "llm", "hybrid"]
Status = Literal[
    "running",
    "waiting_review",
    "waiting_signature",
    "completed",
    "disqualified",
    "declined",
    "rejected",
    "failed",
]
STATUSES: tuple[Status, ...] = get_args(Status)


def merge_failures(
    current: dict[str, Failure], update: dict[str, Failure | None]
) -> dict[str, Failure]:
    """Merge failures by step; a `None` value clears that step's failure."""
    merged = dict(current or {})
    for step, failure in (update or {}).items():
        if failure is None:
            merged.pop(step, None)
        else:
            merged[step] = failure
    return merged


def add_usage(current: LLMUsage | None, update: LLMUsage | None) -> LLMUsage:
    """Sum usage reported by successive supervisor turns."""
    return (current or LLMUsage()) + (update or LLMUsage())


def merge_pending(current: dict[str, str], update: dict[str, str | None]) -> dict[str, str]:
    """Tool calls awaiting their result, by node; a `None` value clears that node."""
    merged = dict(current or {})
    for node, call_id in (update or {}).items():
        if call_id is None:
            merged.pop(node, None)
        else:
            merged[node] = call_id
    return merged


class DealState(BaseModel):
    """One deal's state: its input, each agent's output, reviews and outcome."""

    model_config = ConfigDict(arbitrary_types_allowed=False)

    deal: DealInput
    qualification: Qualification | None = None
    project: Project | None = None
    contract: Contract | None = None
    envelope: Envelope | None = None
    signature: SignatureEvent | None = None
    invoice: Invoice | None = None
    failures: Annotated[dict[str, Failure], merge_failures] = {}
    reviews: Annotated[list[ReviewDecision], operator.add] = []
    completed_steps: Annotated[list[str], operator.add] = []
    outcome: Outcome | None = None
    supervisor: SupervisorMode = "rules"
    supervisor_messages: Annotated[list[AnyMessage], add_messages] = []
    pending_tool_calls: Annotated[dict[str, str], merge_pending] = {}
    llm_usage: Annotated[LLMUsage, add_usage] = LLMUsage()
    llm_refused_turns: int = 0
    llm_summary: str | None = None
    escalation: Escalation | None = None
