"""The runtime context every node receives, and each agent step's view of it.

`DealContext` is the graph's LangGraph `context_schema`: the settings, the
systems of record and the shared data layer. Callers pass it with
`graph.invoke(..., context=DealContext(...))`; a run without one (LangGraph
Server, a notebook) gets settings from the environment, the systems named by
`DEALFLOW_SYSTEMS` (default: the Postgres sandbox) and the data layer on the
same database.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langgraph.runtime import Runtime
from langsmith.run_helpers import get_current_run_tree
from pydantic import BaseModel

from agents.systems import Systems
from agents.systems.faults import FaultInjector
from agents.systems.sandbox import sandbox_systems
from state.audit import Origin
from state.config import ConfigError, Settings
from state.context_store import context_key
from state.crash import crash_hook
from state.data import DataLayer
from state.database import Pool, resolve_database_url, shared_pool
from state.migrate import apply_migrations

M = TypeVar("M", bound=BaseModel)
SystemsFactory = Callable[[Pool, Settings], Systems]


@dataclass(frozen=True)
class DealContext:
    """Run-scoped configuration and dependencies of the deal graph."""

    settings: Settings = field(default_factory=Settings.from_env)
    systems: Systems | None = None
    data: DataLayer | None = None


class MissingContext(RuntimeError):
    """A fact an agent needs is not in the shared context store."""


_defaults: dict[tuple[str, ...], Any] = {}
_lock = threading.Lock()


def context_of(runtime: Runtime[DealContext] | None) -> DealContext:
    """The run's context, or one built from the environment when none was passed."""
    context = runtime.context if runtime is not None else None
    return context if isinstance(context, DealContext) else DealContext()


def build_systems(pool: Pool, settings: Settings) -> Systems:
    """The systems `settings` name (`DEALFLOW_SYSTEMS`), else the sandbox."""
    if settings.systems_factory:
        module_name, _, attr = settings.systems_factory.partition(":")
        try:
            factory: SystemsFactory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"DEALFLOW_SYSTEMS={settings.systems_factory}: {exc}") from exc
        return factory(pool, settings)
    faults = FaultInjector(settings.sandbox_outage, settings.sandbox_latency_ms)
    return sandbox_systems(pool, faults)


def build_data_layer(pool: Pool, settings: Settings) -> DataLayer:
    """The data layer on `pool`, with the crash-test hook the settings name."""
    return DataLayer.on(pool, crash_hook(settings.crash_at))


def _cached(kind: str, settings: Settings, make: Callable[[Pool], Any]) -> Any:
    url = resolve_database_url(settings)
    key = (kind, url, settings.model_dump_json())
    with _lock:
        if key not in _defaults:
            pool = shared_pool(url)
            if ("migrated", url) not in _defaults:  # e.g. under LangGraph Server: no service
                apply_migrations(pool)             # set the schema up before first use
                _defaults[("migrated", url)] = True
            _defaults[key] = make(pool)
        return _defaults[key]


def systems_for(runtime: Runtime[DealContext] | None) -> Systems:
    """The systems of record of this run."""
    context = context_of(runtime)
    if context.systems is not None:
        return context.systems
    systems: Systems = _cached("systems", context.settings,
                               lambda pool: build_systems(pool, context.settings))
    return systems


def data_for(runtime: Runtime[DealContext] | None) -> DataLayer:
    """The shared data layer of this run."""
    context = context_of(runtime)
    if context.data is not None:
        return context.data
    data: DataLayer = _cached("data", context.settings,
                              lambda pool: build_data_layer(pool, context.settings))
    return data


def origin_of(runtime: Runtime[DealContext] | None, deal_id: str, agent: str,
              step: str) -> Origin:
    """Who is acting, where: agent and step, with the thread and checkpoint if known.

    When LangSmith tracing is on, the node's run gets the checkpoint id as metadata too.
    """
    info = getattr(runtime, "execution_info", None)
    origin = Origin(deal_id=deal_id, agent=agent, step=step,
                    thread_id=getattr(info, "thread_id", None),
                    checkpoint_id=getattr(info, "checkpoint_id", None))
    run = get_current_run_tree()
    if run is not None and origin.checkpoint_id:
        run.metadata.setdefault("checkpoint_id", origin.checkpoint_id)
    return origin


def once_key(runtime: Runtime[DealContext] | None, action: str) -> str | None:
    """A dedupe key for an audit entry made by this task (a re-run of it adds none)."""
    info = getattr(runtime, "execution_info", None)
    if info is None or not getattr(info, "thread_id", None):
        return None
    return f"{info.thread_id}:{info.task_id}:{action}"


def effect_key(deal_id: str, step: str) -> str:
    """The idempotency key of a step's external effect for one deal."""
    return f"{deal_id}:{step}"


@dataclass(frozen=True)
class StepRun:
    """One agent step's view of its run: systems, shared context and effect ledger."""

    origin: Origin
    systems: Systems
    data: DataLayer
    settings: Settings

    @property
    def key(self) -> str:
        """The idempotency key of this step's effect."""
        return effect_key(self.origin.deal_id, self.origin.step or self.origin.agent)

    def effect(self, name: str, model: type[M], call: Callable[[], M],
               lookup: Callable[[str], M | None]) -> M:
        """Perform the step's external effect once (see `state.effects`)."""
        return self.data.effects.perform(self.origin, name, model, call,
                                         lambda: lookup(self.key))

    def read(self, name: str) -> Any:
        """The deal's fact `name` from the shared context store, or None."""
        found = self.data.context.read(context_key(self.origin.deal_id, name))
        return found.value if found else None

    def require(self, name: str) -> Any:
        """The deal's fact `name`, or `MissingContext` naming it."""
        value = self.read(name)
        if value is None:
            raise MissingContext(
                f"{self.origin.agent} agent needs {context_key(self.origin.deal_id, name)}, "
                "which is not in the shared context store"
            )
        return value

    def write(self, name: str, value: Any) -> None:
        """Publish the deal's fact `name` (create-once; the same value again is a no-op)."""
        self.data.context.write(context_key(self.origin.deal_id, name), value,
                                agent=self.origin.agent, expected_version=0,
                                origin=self.origin)


def step_run(runtime: Runtime[DealContext] | None, deal_id: str, agent: str,
             step: str) -> StepRun:
    """The `StepRun` of `step` for one deal."""
    return StepRun(origin=origin_of(runtime, deal_id, agent, step),
                   systems=systems_for(runtime), data=data_for(runtime),
                   settings=context_of(runtime).settings)
