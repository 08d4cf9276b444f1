"""The real providers a role can use, chosen by settings (`DEALFLOW_BILLING=stripe`).

`PROVIDERS` is the one list of them: for each role (a system's `name`), the
provider's name and the class that speaks its API, imported only when chosen.
Every provider class is built with `from_settings(settings, pool)` (a missing
credential is a one-line `ConfigError`; `pool`: the database its rate limit, if
`DEALFLOW_RATE_LIMITS` declares one, is shared on), and offers `check()` (one
harmless authenticated call, a one-line verdict) and `setup()` (what it created).
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast, runtime_checkable

from pydantic import SecretStr

from agents.systems.base import SystemOfRecord, Systems, SystemUnavailable
from agents.systems.http import ProviderClient, ProviderRefused
from agents.systems.rate_limits import RateLimit, parse_rate_limits, rate_limiter
from state.config import ConfigError, Settings, env_var
from state.database import Pool

# role → provider → "module:Class"
PROVIDERS: dict[str, dict[str, str]] = {
    "crm": {"hubspot": "agents.systems.hubspot:HubSpotCRM"},
    "pm": {"asana": "agents.systems.asana:AsanaProjects"},
    "esign": {"docusign": "agents.systems.docusign:DocuSignESign"},
    "billing": {"stripe": "agents.systems.stripe:StripeBilling"},
}


@runtime_checkable
class Provider(Protocol):
    """What a real provider's connector offers beside its role's interface."""

    def check(self) -> str:
        """One harmless authenticated call; a one-line verdict (raises if it fails)."""
        ...

    def setup(self) -> list[str]:
        """Create what the connector needs at the provider (idempotent); what was created."""
        ...


class ProviderFactory(Protocol):
    """A provider class: built from the settings."""

    def from_settings(self, settings: Settings, pool: Pool | None = None) -> SystemOfRecord:
        """The connector, or `ConfigError` naming the missing setting."""
        ...


def chosen(settings: Settings) -> dict[str, str]:
    """The role → provider choices that are not the sandbox."""
    return {role: getattr(settings, role) for role in PROVIDERS
            if getattr(settings, role) != "sandbox"}


def with_providers(systems: Systems, settings: Settings, pool: Pool | None = None) -> Systems:
    """`systems` with each role the settings give a provider served by that provider.

    `pool`: the database the providers' rate limits are shared on (see
    `rate_limits`); the declared limits are checked here, providers chosen or not.
    """
    limits = rate_limits(settings)
    for role, name in chosen(settings).items():
        systems = systems.with_system(cast(SystemOfRecord, provider(role, settings, pool)),
                                      rate_limiter(settings, name, limits.get(name), pool))
    return systems


def rate_limits(settings: Settings) -> dict[str, RateLimit]:
    """The declared rate limits (`DEALFLOW_RATE_LIMITS`) by provider; `ConfigError` if bad."""
    return parse_rate_limits(settings.rate_limits,
                             {name for providers in PROVIDERS.values() for name in providers})


def required(settings: Settings, *fields: str) -> list[str]:
    """The values of `fields` (secrets revealed), or `ConfigError` naming the first unset."""
    values = []
    for field in fields:
        value = getattr(settings, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not value:
            raise ConfigError(f"configuration {field} ({env_var(field)}) is not set; the "
                              f"provider chosen for this system needs it")
        values.append(str(value))
    return values


def provider_client(settings: Settings, system: str, base_url: str, headers: dict[str, str],
                    *, provider: str, pool: Pool | None = None) -> ProviderClient:
    """The HTTP client of `provider` in the role `system`, with the settings' timeouts.

    Its retries and waits are the settings', and so is its rate limit, if one is
    declared (shared on `pool`'s database).
    """
    limiter = rate_limiter(settings, provider, rate_limits(settings).get(provider), pool)
    return ProviderClient(system, base_url, headers,
                          timeout=settings.provider_timeout_seconds,
                          retries=settings.provider_retries,
                          max_wait=settings.provider_max_wait_seconds, limiter=limiter)


def provider(role: str, settings: Settings, pool: Pool | None = None) -> Provider:
    """The connector of the provider the settings give `role` (not the sandbox)."""
    module_name, _, attr = PROVIDERS[role][getattr(settings, role)].partition(":")
    factory = cast(ProviderFactory, getattr(importlib.import_module(module_name), attr))
    return cast(Provider, factory.from_settings(settings, pool))


def each_provider(settings: Settings, act: str) -> list[dict[str, object]]:
    """`check` or `setup` every role: `{system, provider, ok, said}` each, in one line.

    A sandbox role is reported as such (nothing to call); a provider's failure
    (refused, unreachable, a setting missing) is its line, never its secret.
    """
    rate_limits(settings)
    results: list[dict[str, object]] = []
    for role in PROVIDERS:
        name = getattr(settings, role)
        if name == "sandbox":
            results.append({"system": role, "provider": name, "ok": True,
                            "said": "sandbox tables in dealflow's database: nothing to call"})
            continue
        try:
            connector = provider(role, settings)
            said = connector.check() if act == "check" else (
                "created " + ", ".join(made) if (made := connector.setup())
                else "nothing to create")
            results.append({"system": role, "provider": name, "ok": True, "said": said})
        except (ConfigError, ProviderRefused, SystemUnavailable) as exc:
            results.append({"system": role, "provider": name, "ok": False,
                            "said": str(exc).removeprefix(f"{role}: ")})
    return results
