"""Which system of record each role uses, and what the real providers need.

Part of `state.config.Settings` (its base class): every field is read from
`DEALFLOW_` and its name in upper case, like the others. The sandbox is the
default for every role; a provider is chosen per role (`DEALFLOW_BILLING=stripe`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr

_URL = r"^https?://[^\s]+$"


class ProviderSettings(BaseModel):
    """The systems of record by role, their credentials, and how their calls are made."""

    crm: Literal["sandbox", "hubspot"] = "sandbox"
    pm: Literal["sandbox", "asana"] = "sandbox"
    esign: Literal["sandbox", "docusign"] = "sandbox"
    billing: Literal["sandbox", "stripe"] = "sandbox"
    stripe_api_key: SecretStr | None = None
    stripe_api_base: str = Field(default="https://api.stripe.com", pattern=_URL)
    docusign_base_uri: str | None = Field(
        default=None, pattern=_URL, description="e.g. https://demo.docusign.net/restapi")
    docusign_account_id: str | None = None
    docusign_access_token: SecretStr | None = None
    docusign_connect_key: tuple[SecretStr, ...] = Field(
        default=(), description="HMAC keys of DocuSign Connect, comma-separated (rotation).")
    hubspot_token: SecretStr | None = None
    hubspot_api_base: str = Field(default="https://api.hubapi.com", pattern=_URL)
    asana_token: SecretStr | None = None
    asana_api_base: str = Field(default="https://app.asana.com/api/1.0", pattern=_URL)
    asana_workspace: str | None = None
    asana_team: str | None = Field(
        default=None, description="The team new projects belong to (Asana organizations).")
    provider_timeout_seconds: float = Field(
        default=10, gt=0, le=300, description="Connect and read timeout of one HTTP request.")
    provider_retries: int = Field(
        default=4, ge=0, le=20,
        description="Repeats of a request that failed before reaching the provider, or is "
                    "safe to repeat, within one attempt of the step.")
    provider_max_wait_seconds: float = Field(
        default=120, ge=0, le=3600,
        description="How long one call waits in all for a provider's 429/503 Retry-After "
                    "before the step's attempt fails.")
    provider_lag_seconds: float = Field(
        default=30, ge=0, le=600,
        description="How long a provider's search or list may lag behind its writes: a "
                    "lookup that finds nothing asks again until this long has passed.")
