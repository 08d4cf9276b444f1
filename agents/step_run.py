"""One agent step's view of its run, handed to the step's node by the graph builder.

A node never looks anything up: it gets a `StepRun` that already knows who is
acting and where (`origin`), the system of record the step is declared on, the
shared data layer and the settings. Through it the node performs its external
effect once per request (`effect`) and reads and publishes the deal's shared
facts (`read`, `require`, `write`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel

from agents.systems.rate_limits import RateLimiter
from state.audit import Origin
from state.config import Settings
from state.data import DataLayer
from state.fact_store import fact_key
from state.work import StepWork

if TYPE_CHECKING:
    from graph.waiting import WaitRun

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class MissingFact(RuntimeError):
    """A fact an agent needs is not in the shared fact store."""


@dataclass(frozen=True)
class StepRun:
    """Everything one run of one step may use, and the effects it used."""

    origin: Origin
    data: DataLayer
    settings: Settings
    work: StepWork | None = None  # the task's unit of work (`state.work`), from the builder
    system_of_record: object | None = None
    used_keys: list[str] = field(default_factory=list)
    wait: WaitRun | None = None  # an event step's wait (`graph.waiting`)
    rate_limit: RateLimiter | None = None  # in a worker's job: the system's, to hold back by

    @property
    def deal_id(self) -> str:
        """The deal this step runs for."""
        return self.origin.deal_id

    def system(self, kind: Callable[..., T]) -> T:
        """The step's declared system of record, checked against the interface `kind`."""
        system = self.system_of_record
        if system is None:
            raise TypeError(f"step {self.origin.step} is declared without a system of record")
        if not isinstance(system, kind):  # type: ignore[arg-type]
            raise TypeError(f"step {self.origin.step}: system {getattr(system, 'name', system)!r}"
                            f" does not implement {getattr(kind, '__name__', kind)}")
        return cast(T, system)

    def effect(self, name: str, model: type[M], request: Mapping[str, Any],
               call: Callable[[str], M], lookup: Callable[[str], M | None] | None) -> M:
        """Perform the external effect `name` for `request` once (see `state.effects`).

        `request` holds the terms the system is asked to act on: the same terms
        again get the recorded receipt, other terms (a fork) a new effect. In a
        worker's job (`rate_limit` set) an effect no slot of the provider's rate
        limit is due for is held back before its claim (`RateLimited`: the job is
        continued later); once claimed, its requests wait for their slots.
        """
        if self.rate_limit is not None:
            self.rate_limit.hold_back()
        receipt, key = self.data.effects.perform(self.origin, name, request, model, call,
                                                 lookup, self.work)
        self.used_keys.append(key)
        return receipt

    def read(self, name: str) -> Any:
        """The deal's fact `name` from the shared fact store, or None."""
        found = self.data.facts.read(fact_key(self.deal_id, name))
        return found.value if found else None

    def require(self, name: str) -> Any:
        """The deal's fact `name`, or `MissingFact` naming it."""
        return self.require_all(name)[0]

    def require_all(self, *names: str) -> tuple[Any, ...]:
        """The deal's facts `names` (read together), or `MissingFact` naming the first missing."""
        keys = [fact_key(self.deal_id, name) for name in names]
        found = self.data.facts.read_many(keys)
        for key in keys:
            if key not in found:
                raise MissingFact(f"{self.origin.agent} agent needs {key}, "
                                  "which is not in the shared fact store")
        return tuple(found[key].value for key in keys)

    def write(self, name: str, value: Any) -> None:
        """Publish the deal's fact `name` (the same value again is a no-op).

        An agent replaces only its own fact, with a newer version of the truth
        (a fork of the thread with other terms); the write checks the version it
        read. A fact another agent holds is a `VersionConflict`, never overwritten.
        """
        self.data.facts.write(fact_key(self.deal_id, name), value, agent=self.origin.agent,
                              only_own=True, origin=self.origin, work=self.work)
