"""Settings that point dealflow's connectors at the local provider servers."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from state.config import Settings
from tests.providers.asana import AsanaServer
from tests.providers.hubspot import HubSpotServer

# Fast and few: a test waits seconds, not minutes, for what the defaults would wait.
FAST = {"provider_timeout_seconds": 5, "provider_retries": 2, "provider_max_wait_seconds": 10,
        "provider_lag_seconds": 0}


def with_hubspot(settings: Settings, server: HubSpotServer, **extra: Any) -> Settings:
    """`settings` with the CRM served by the local HubSpot `server`."""
    return settings.model_copy(update={
        **FAST, "crm": "hubspot", "hubspot_token": SecretStr(server.token),
        "hubspot_api_base": server.base_url, **extra})


def with_asana(settings: Settings, server: AsanaServer, **extra: Any) -> Settings:
    """`settings` with the project tool served by the local Asana `server`."""
    return settings.model_copy(update={
        **FAST, "pm": "asana", "asana_token": SecretStr(server.token),
        "asana_api_base": server.base_url, "asana_workspace": server.workspace, **extra})


def attempts(effects: list[dict[str, Any]], effect: str) -> list[int]:
    """The ledger's attempt counts of `effect` (one per key) in a deal's effect rows."""
    return [row["attempts"] for row in effects if row["effect"] == effect]
