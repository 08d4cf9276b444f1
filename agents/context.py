"""The runtime context every node receives: the settings and the systems of record.

It is the graph's LangGraph `context_schema`. Callers pass it with
`graph.invoke(..., context=DealContext(...))`; a run without one (LangGraph
Server, a notebook) gets settings from the environment and the Postgres sandbox.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from langgraph.runtime import Runtime

from agents.systems import Systems
from agents.systems.faults import FaultInjector
from agents.systems.sandbox import sandbox_systems
from state.config import Settings
from state.database import resolve_database_url, shared_pool


@dataclass(frozen=True)
class DealContext:
    """Run-scoped configuration and dependencies of the deal graph."""

    settings: Settings = field(default_factory=Settings.from_env)
    systems: Systems | None = None


_default_systems: dict[tuple[str, str, int], Systems] = {}
_lock = threading.Lock()


def context_of(runtime: Runtime[DealContext] | None) -> DealContext:
    """The run's context, or one built from the environment when none was passed."""
    context = runtime.context if runtime is not None else None
    return context if isinstance(context, DealContext) else DealContext()


def systems_for(runtime: Runtime[DealContext] | None) -> Systems:
    """The systems of record of this run (the sandbox unless the context names others)."""
    context = context_of(runtime)
    if context.systems is not None:
        return context.systems
    return default_systems(context.settings)


def default_systems(settings: Settings) -> Systems:
    """The sandbox on the settings' database, one per process and configuration."""
    url = resolve_database_url(settings)
    key = (url, repr(sorted(settings.sandbox_outage.items())), settings.sandbox_latency_ms)
    with _lock:
        systems = _default_systems.get(key)
        if systems is None:
            faults = FaultInjector(settings.sandbox_outage, settings.sandbox_latency_ms)
            systems = sandbox_systems(shared_pool(url), faults)
            _default_systems[key] = systems
        return systems


def effect_key(deal_id: str, step: str) -> str:
    """The idempotency key of a step's external effect for one deal."""
    return f"{deal_id}:{step}"
