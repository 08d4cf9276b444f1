"""The typed state that flows between the graph's nodes.

Fields written by parallel nodes have reducers; everything else is written by
exactly one node per super-step.
"""

from __future__ import annotations

import operator
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict

from state.models import (
    Contract,
    DealInput,
    Envelope,
    Failure,
    Invoice,
    Project,
    Qualification,
    ReviewDecision,
    SignatureEvent,
)

Outcome = Literal["completed", "disqualified", "declined", "rejected"]
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
