"""The systems of record the settings name: `DEALFLOW_SYSTEMS`, else the sandbox.

Importing it imports no graph: `DealContext` builds its systems here, and so does
`dealflow records` when it reads without the graph (`dealflow.recorded_status`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from agents.systems.base import Systems
from agents.systems.faults import FaultInjector
from agents.systems.providers import with_providers
from agents.systems.sandbox import sandbox_systems
from state.config import ConfigError, Settings
from state.database import Pool

SystemsFactory = Callable[[Pool, Settings], Systems]


def build_systems(pool: Pool, settings: Settings) -> Systems:
    """The systems `settings` name (`DEALFLOW_SYSTEMS`), else the sandbox.

    A role given a real provider (`DEALFLOW_BILLING=stripe`) is served by it.
    """
    if settings.systems_factory:
        module_name, _, attr = settings.systems_factory.partition(":")
        try:
            factory: SystemsFactory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"DEALFLOW_SYSTEMS={settings.systems_factory}: {exc}") from exc
        return with_providers(factory(pool, settings), settings, pool)
    faults = FaultInjector(settings.sandbox_outage, settings.sandbox_latency_ms)
    return with_providers(sandbox_systems(pool, faults), settings, pool)
