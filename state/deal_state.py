"""The typed state that flows between the graph's nodes.

Fields written by parallel nodes have reducers; everything else is written by
exactly one node per super-step.
"""

from __future__ import annotations

import operator
from typing import Annotated, TypeVar

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
    Outcome,
    Project,
    Qualification,
    ReviewDecision,
    SignatureEvent,
    SupervisorMode,
)

V = TypeVar("V")


def merge_or_clear(current: dict[str, V], update: dict[str, V | None]) -> dict[str, V]:
    """Merge by key; a `None` value removes the key (a reducer for parallel writers)."""
    merged = dict(current or {})
    for key, value in (update or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


merge_failures = merge_or_clear  # failures by step


def add_usage(current: LLMUsage | None, update: LLMUsage | None) -> LLMUsage:
    """Sum usage reported by successive supervisor turns."""
    return (current or LLMUsage()) + (update or LLMUsage())


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
    pending_tool_calls: Annotated[dict[str, str], merge_or_clear] = {}  # by node
    llm_usage: Annotated[LLMUsage, add_usage] = LLMUsage()
    llm_refused_turns: int = 0
    llm_summary: str | None = None
    escalation: Escalation | None = None
    effect_keys: Annotated[dict[str, str], merge_or_clear] = {}  # each effect's key → its step
