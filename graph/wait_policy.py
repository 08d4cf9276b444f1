"""What a wait's deadlines are and do: the declaration types of `Workflow.waits`.

A `WaitPolicy` names a wait (`review`, `signature`), the node that waits, and
its deadlines. Each deadline's delay is the setting `<wait>_<action>_after`
(`DEALFLOW_REVIEW_EXPIRE_AFTER=7d`; `off`: no such deadline) where `Settings`
has one, else the delay the deadline declares (`after`). What an action does
to the deal is the same for every wait: `remind` tells the people again,
`escalate` tells the escalation contact, `expire` ends the wait and the deal as
`expired`. What it does to the outside world is declared with it: the notice
text (`notice`, a template) and the call on the wait's system of record
(`call`: the e-sign system reminds the signer, voids the envelope).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from string import Formatter
from typing import Any, Literal

from pydantic import BaseModel

from state.config import Settings

DeadlineAction = Literal["remind", "escalate", "expire"]
NOTICE_FIELDS = ("deal", "client", "deal_id", "since", "due_at", "handle", "name")
"""The placeholders a notice template may use (`{deal}`: client, id and value)."""


@dataclass(frozen=True)
class SystemCall:
    """What a deadline has the wait's system of record do, once, through the effect ledger.

    The deadline calls `system.<method>(handle, key=key, **args)` (the handle:
    the fact the waiting step declares, such as the envelope's id), which
    returns a `receipt`; `system.<lookup>(key)` says whether an interrupted
    call went through. The ledger keys the call by the handle and `args`, and
    by the deadline's id too when `per_deadline` (each reminder is its own call).
    """

    method: str
    receipt: type[BaseModel]
    lookup: str = "lookup"
    args: tuple[tuple[str, Any], ...] = ()
    per_deadline: bool = False


@dataclass(frozen=True)
class DeadlineSpec:
    """One deadline of a wait: the action, what it does in words, and to the outside world.

    `then` describes it (status, inbox, README); `notice` is the text the
    people told are sent (a template of `NOTICE_FIELDS`); `call` what the wait's
    system does; `after` the delay when `Settings` has no field for it.
    """

    action: DeadlineAction
    then: str
    notice: str = "{name} for {deal}"
    call: SystemCall | None = None
    after: timedelta | None = None

    def __post_init__(self) -> None:
        """Refuse a notice template with a placeholder nobody fills."""
        unknown = [field for _, field, _, _ in Formatter().parse(self.notice)
                   if field is not None and field not in NOTICE_FIELDS]
        if unknown:
            raise ValueError(f"deadline {self.action}: notice uses unknown placeholder(s) "
                             f"{', '.join(unknown)} (known: {', '.join(NOTICE_FIELDS)})")

    def text(self, **values: str) -> str:
        """The notice, filled in with `values` (each of `NOTICE_FIELDS`)."""
        return self.notice.format_map({field: values.get(field, "") for field in NOTICE_FIELDS})


@dataclass(frozen=True)
class WaitPolicy:
    """A wait for the outside world, its deadlines, its system and whom it tells."""

    name: str
    node: str
    deadlines: tuple[DeadlineSpec, ...]
    system: str | None = None
    notify: str = "reviewers"

    def setting(self, spec: DeadlineSpec) -> str:
        """The `Settings` field that may hold the deadline's delay."""
        return f"{self.name}_{spec.action}_after"

    def deadline_name(self, spec: DeadlineSpec) -> str:
        """`review.expire`: how audit, status and notifications name the deadline."""
        return f"{self.name}.{spec.action}"

    def spec(self, name: str) -> DeadlineSpec:
        """The deadline called `name` (`review.expire`)."""
        found = self.declared(name)
        if found is None:
            raise KeyError(f"wait {self.name} declares no deadline {name!r}")
        return found

    def declared(self, name: str) -> DeadlineSpec | None:
        """The deadline called `name`, if the wait declares it (still)."""
        return next((spec for spec in self.deadlines if self.deadline_name(spec) == name),
                    None)

    def undelayed(self) -> list[str]:
        """Deadlines with neither a setting nor a declared delay (a declaration error)."""
        return [self.setting(spec) for spec in self.deadlines
                if spec.after is None and self.setting(spec) not in Settings.model_fields]

    def delay(self, spec: DeadlineSpec, settings: Settings) -> timedelta | None:
        """The deadline's delay: its setting if `Settings` has one, else the declared one."""
        if self.setting(spec) in Settings.model_fields:
            value: timedelta | None = getattr(settings, self.setting(spec))
            return value
        return spec.after

    def delays(self, settings: Settings) -> list[tuple[str, str, timedelta]]:
        """`(name, action, delay)` of each deadline that is on."""
        found: list[tuple[str, str, timedelta]] = []
        for spec in self.deadlines:
            delay = self.delay(spec, settings)
            if delay is not None:
                found.append((self.deadline_name(spec), spec.action, delay))
        return found
