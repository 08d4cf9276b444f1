"""Stopping for the outside world with deadlines: `WaitRun.ask` instead of a bare `interrupt`.

Before it stops, `ask` opens the wait in Postgres (`state.waits`): its
deadlines from the workflow's `WaitPolicy` and the settings, an audit entry
and the announcement ("review requested"). Resumed, it validates the answer
(asking again, with the error, while it is malformed) and settles the wait:
whatever claimed it first (this answer, or a person's or an expiry that a
`DealService` claimed before resuming) is what the node gets. So a decision
and an expiry that arrive together have exactly one effect, whichever process
drives the thread, LangGraph alone included. A node that runs again on resume
opens its wait again and claims it again: both change nothing then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from graph.wait_policy import WaitPolicy
from state.audit import Origin
from state.config import Settings
from state.data import DataLayer
from state.outbox import Notice
from state.waits import EXPIRED
from state.work import StepWork

Parse = Callable[[Any], dict[str, Any]]


def wait_key_of(runtime: Runtime[Any] | None) -> str | None:
    """The key of the wait a node opens: its task's id (None outside a checkpointed thread)."""
    info = getattr(runtime, "execution_info", None)
    if info is None or not getattr(info, "thread_id", None):
        return None
    return str(info.task_id)


def is_expiry(value: Any) -> bool:
    """Whether a resume value (or resolution) is an expiry: `{"expired": {...}}`."""
    return isinstance(value, dict) and set(value) == {EXPIRED}


@dataclass(frozen=True)
class WaitRun:
    """One wait of one node run: its policy, where it is, what it may use."""

    policy: WaitPolicy | None
    origin: Origin
    key: str | None
    data: DataLayer
    settings: Settings
    work: StepWork | None = None  # the task's unit of work, written before the wait opens

    def ask(self, request: dict[str, Any], parse: Parse, notice: Notice | None = None,
            actor: str = "reviewer") -> dict[str, Any]:
        """Open the wait, stop with `request`, and return the resolution that won.

        `parse` turns a resume value into the resolution to store (raising
        ValueError, shown to the next resume, if it cannot); an expiry passes as
        it is. `actor` names who answered when nobody claimed the wait before.
        """
        if self.key is not None:
            delays = self.policy.delays(self.settings) if self.policy else []
            self.data.waits.open(self.origin, wait=self.policy.name if self.policy else
                                 str(self.origin.step), key=self.key, deadlines=delays,
                                 notice=notice, work=self.work)
        raw = interrupt(request)
        while not is_expiry(raw):
            try:
                raw = parse(raw)
                break
            except ValueError as exc:
                raw = interrupt({**request, "error": str(exc)})
        if self.key is None:
            return dict(raw)
        by = str(raw.get("reviewer") or actor) if not is_expiry(raw) else "deadline"
        claim = self.data.waits.claim(self.origin, self.key, dict(raw), by)
        return dict(claim.wait.resolution or raw)
