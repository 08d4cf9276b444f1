"""What a supervisor (the rules or the LLM) decides at one visit: the same object for both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from state.models import Outcome


class WorkflowStuck(RuntimeError):
    """No step can run and no outcome is reached: the declaration has a gap."""


@dataclass(frozen=True)
class Decision:
    """Nodes to run next (in parallel), or the deal's outcome; why; and what to remember.

    `update` is the rest of the state update the supervisor makes (the LLM's
    messages and usage); `audit` is extra detail for the audit entry.
    """

    goto: tuple[str, ...] = ()
    outcome: Outcome | None = None
    reason: str = ""
    update: Mapping[str, Any] = field(default_factory=dict)
    audit: Mapping[str, Any] = field(default_factory=dict)
