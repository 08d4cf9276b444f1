"""What a wait's deadlines are: the declaration types of `Workflow.waits`.

A `WaitPolicy` names a wait (`review`, `signature`), the node that waits, and
its deadlines; each deadline's delay is the setting `<wait>_<action>_after`
(`DEALFLOW_REVIEW_EXPIRE_AFTER=7d`; `off`: no such deadline). What an action
does is the same for every wait: `remind` tells the people again (and has the
wait's system of record remind its counterpart, if it declares one), `escalate`
tells the escalation contact, `expire` ends the wait and the deal as `expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from state.config import Settings

DeadlineAction = Literal["remind", "escalate", "expire"]


@dataclass(frozen=True)
class DeadlineSpec:
    """One deadline of a wait: the action, and what it does in words (status, README)."""

    action: DeadlineAction
    then: str


@dataclass(frozen=True)
class WaitPolicy:
    """A wait for the outside world and its deadlines."""

    name: str
    node: str
    deadlines: tuple[DeadlineSpec, ...]
    system: str | None = None
    notify: str = "reviewers"

    def setting(self, spec: DeadlineSpec) -> str:
        """The `Settings` field holding the deadline's delay."""
        return f"{self.name}_{spec.action}_after"

    def deadline_name(self, spec: DeadlineSpec) -> str:
        """`review.expire`: how audit, status and notifications name the deadline."""
        return f"{self.name}.{spec.action}"

    def spec(self, name: str) -> DeadlineSpec:
        """The deadline called `name` (`review.expire`)."""
        for spec in self.deadlines:
            if self.deadline_name(spec) == name:
                return spec
        raise KeyError(f"wait {self.name} declares no deadline {name!r}")

    def delays(self, settings: Settings) -> list[tuple[str, str, timedelta]]:
        """`(name, action, delay)` of each deadline the settings turn on."""
        found: list[tuple[str, str, timedelta]] = []
        for spec in self.deadlines:
            delay = getattr(settings, self.setting(spec))
            if delay is not None:
                found.append((self.deadline_name(spec), spec.action, delay))
        return found
