"""The one typed configuration object, with its environment fallbacks.

This is the only module that reads the environment. Everything else receives a
`Settings` (LangGraph passes it to nodes inside the runtime context).

`Settings.from_env()` reads a field from `DEALFLOW_` and its name in upper case
(`DEALFLOW_MAX_ATTEMPTS`), or from the variable `ENV_ALIASES` names instead:
`DATABASE_URL`, `OPENAI_API_KEY`, `OPENAI_BASE_URL` and `DEALFLOW_SYSTEMS`
(`systems_factory`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
)

from state.durations import OptionalDuration
from state.models import SupervisorMode
from state.numerals import plain_number
from state.provider_settings import ProviderSettings
from state.validation import first_error

_SYSTEM = "[a-z][a-z0-9_]*"
_OUTAGE_PART = re.compile(rf"\s*({_SYSTEM})\s*:\s*([0-9]+)\s*")
_SystemName = Annotated[str, StringConstraints(pattern=f"^{_SYSTEM}$")]
_Outage = dict[_SystemName, Annotated[int, Field(ge=0)]]
_HOST = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*|\[[0-9a-f:.]+\]")
# The fields whose variable is not `DEALFLOW_` + the field name in upper case.
ENV_ALIASES = {
    "database_url": "DATABASE_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_base_url": "OPENAI_BASE_URL",
    "systems_factory": "DEALFLOW_SYSTEMS",
}


def env_var(field: str) -> str:
    """The variable the settings field `field` is read from (`DEALFLOW_MAX_ATTEMPTS`)."""
    return ENV_ALIASES.get(field, "DEALFLOW_" + field.upper())


def _host_name(value: str) -> str:
    """A Host name clients may use (`deals.example.com`, `10.0.0.5`, `[fd00::1]`), no port."""
    name = value.strip().lower()
    if not _HOST.fullmatch(name):
        raise ValueError(f"expected a host name without a port, e.g. deals.example.com or "
                         f"[fd00::1], got {value.strip()!r:.60}")
    return name


_HostName = Annotated[str, AfterValidator(_host_name)]


class ConfigError(ValueError):
    """A configuration value (flag or environment variable) is not usable."""


def user_data_dir() -> Path:
    """The embedded server's default folder, one per user, whatever folder a command runs in.

    The platform's user data folder (platformdirs): `$XDG_DATA_HOME/dealflow` (an absolute
    XDG_DATA_HOME), else `~/.local/share/dealflow` on Linux; macOS's, Windows' elsewhere.
    """
    return Path(platformdirs.user_data_dir("dealflow", appauthor=False))


def _deadline(default: timedelta, then: str) -> Any:
    """A wait's deadline: its delay, and what happens when the wait lasts that long."""
    return Field(default=default, description=f"When the wait has lasted this long: {then} "
                 "(off: never).")


class Settings(ProviderSettings):
    """Everything dealflow can be configured with.

    Build it with `Settings.from_env()` to take the environment fallbacks, or
    construct it directly (tests, notebooks) to be explicit: that never reads
    the environment.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str | None = Field(
        default=None, description="Postgres URL; None starts the embedded server in data_dir."
    )
    data_dir: Path = Field(
        default_factory=lambda: user_data_dir(),
        description="Where the embedded server keeps its data (default: one folder per user).")
    direct_database_url: str | None = Field(default=None, description="For sessions: LISTEN, locks")
    pool_min_size: int = Field(default=1, ge=0, le=1000, description="Connections kept open")
    pool_max_size: int = Field(default=10, ge=1, le=1000, description="Connections per process")
    pool_timeout_seconds: float = Field(default=30, gt=0, le=3600, description="Wait for one")
    queue_pool_max_size: int = Field(default=4, ge=1, le=1000, description="The job queue's")
    supervisor: SupervisorMode = "rules"
    review_threshold_usd: Decimal = Field(default=Decimal("50000"), gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20,
                              description="Attempts per step, the first included.")
    retry_initial_interval: float = Field(default=0.5, ge=0, le=60)
    retry_backoff_factor: float = Field(default=2.0, ge=1, le=10)
    retry_max_interval: float = Field(default=10.0, ge=0, le=600)
    retry_jitter: bool = True
    tax_rate: Decimal = Field(default=Decimal("0.08"), ge=0, lt=1)
    payment_terms_days: int = Field(default=30, ge=0, le=365)
    sandbox_outage: _Outage = Field(default_factory=dict,
                                    description="System name → number of calls that fail.")
    sandbox_latency_ms: int = Field(default=0, ge=0, le=60_000)
    systems_factory: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:function building the systems of record (default: the sandbox).",
    )
    workflow: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
                                 description="module:attribute naming the Workflow to run.")
    busy_wait_seconds: float = Field(default=0, ge=0, le=3600,
                                     description="Wait this long for a busy thread (0: fail).")
    lease_seconds: float = Field(
        default=20, ge=1, le=3600,
        description="A thread's lease expires this long after its holder last renewed it "
                    "(a holder on this host that died frees it at once).")
    openai_api_key: SecretStr | None = Field(default=None, description="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, description="OPENAI_BASE_URL")
    llm_model: str = Field(default="gpt-4o-mini", min_length=1, max_length=100)
    llm_timeout_seconds: float = Field(default=30, gt=0, le=600)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    llm_max_turns: int = Field(default=12, ge=1, le=100)
    llm_max_refused_turns: int = Field(default=3, ge=1, le=20)
    llm_budget_usd: Decimal = Field(default=Decimal("0.05"), ge=0)
    llm_price_input_per_mtok: Decimal = Field(default=Decimal("0.15"), ge=0)
    llm_price_output_per_mtok: Decimal = Field(default=Decimal("0.60"), ge=0)
    mcp_token: SecretStr | None = Field(
        default=None, description="Bearer token every MCP request over HTTP must carry "
        "(without it, HTTP serves the read tools only)."
    )
    webhook_secret: SecretStr | None = Field(
        default=None, description="DEALFLOW_WEBHOOK_SECRET: the HMAC-SHA256 key of e-sign "
        "webhooks (without it the webhook endpoint refuses every delivery).")
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=1024 ** 3,
        description="The largest request body the HTTP API reads (webhooks and forms too); "
        "a larger one is answered 413 before it is read.")
    worker_stalled_seconds: float = Field(
        default=10, ge=2, le=3600,
        description="A worker silent this long is dead: its jobs are handed to another.")
    mcp_identity: str = Field(
        default="mcp-token", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$",
        description="Who DEALFLOW_MCP_TOKEN authenticates as: the actor in the audit trail.")
    review_remind_after: OptionalDuration = _deadline(
        timedelta(days=1), "notify the reviewers again")
    review_escalate_after: OptionalDuration = _deadline(
        timedelta(days=2), "notify the escalation contact, and audit it")
    review_expire_after: OptionalDuration = _deadline(
        timedelta(days=7), "end the deal as expired")
    signature_remind_after: OptionalDuration = _deadline(
        timedelta(days=3), "have the e-sign system remind the signer")
    signature_expire_after: OptionalDuration = _deadline(
        timedelta(days=30), "void the envelope and end the deal as expired")
    notify_url: str | None = Field(
        default=None, pattern=r"^https?://\S+$", max_length=2000,
        description="Where notifications are posted as Slack-compatible JSON (none: they "
        "are kept in the outbox, marked skipped).")
    notify_timeout_seconds: float = Field(
        default=10, gt=0, le=30,
        description="A notification post fails when connecting, sending or waiting for the "
        "answer takes longer than this (it is retried with back-off).")
    escalation_contact: str = Field(
        default="sales-managers", min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$",
        description="Who an escalation notification is addressed to.")
    crash_at: str | None = Field(default=None, description="Crash-test hook: SIGKILL at "
                                 "step:phase (see state.crash).")
    allowed_hosts: tuple[_HostName, ...] = Field(
        default=(), description="Host names the API, the inbox and MCP answer besides "
        "localhost and the address they are reached at (DNS-rebinding protection); "
        "comma-separated in DEALFLOW_ALLOWED_HOSTS.")
    auth_max_failures: int = Field(
        default=10, ge=1, le=100_000,
        description="Failed sign-ins and bearer checks a client address may make per window; "
        "then it is answered 429 until the window ends.")
    auth_failure_window_seconds: float = Field(
        default=60, ge=1, le=86_400, description="The window failed authentications count in.")
    rate_limits: str | None = Field(
        default=None, max_length=2000, description="Calls per sliding window per provider, "
        "shared by every process: hubspot=100/10s,docusign=3000/h,stripe=25/s (parsed, a bad "
        "entry a one-line error, where the providers are known: agents.systems.rate_limits).")
    retention: OptionalDuration = Field(default=None, description="The workers prune the "
        "checkpoint history of deals ended this long ago (dealflow prune), and delete the "
        "queue's jobs finished this long ago; off: never.")
    forget_after: OptionalDuration = Field(default=None, description="The workers forget, "
        "whole, deals ended this long ago (prune --forget-before; at least the retention).")
    forget_archive: str | None = Field(default=None, min_length=1, description="The forget's "
        "archive directory, or none to forget without one (required with forget_after).")

    @field_validator("crash_at")
    @classmethod
    def _crash_point(cls, value: str | None) -> str | None:
        if value:
            from state.crash import parse_crash_point

            parse_crash_point(value)
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read `os.environ` (or `environ`); explicit overrides win.

        Values are stripped; blank ones and unknown `DEALFLOW_*` variables are ignored
        (names match exactly). An override that is not None replaces its variable,
        which is then not read at all. A bad value is a `ConfigError` of one line
        naming the field and its variable.
        """
        given = {name: value for name, value in overrides.items() if value is not None}
        shadowed = {env_var(name) for name in given}
        env = os.environ if environ is None else environ
        raw = {name: env[var].strip() for name in _EnvSettings.model_fields
               if (var := env_var(name)) not in shadowed and env.get(var, "").strip()}
        try:
            found = _EnvSettings.model_validate(raw)
        except ValidationError as exc:
            raise _config_error(exc, from_env=True) from exc
        values = {name: getattr(found, name) for name in found.model_fields_set}
        try:
            return cls.model_validate(values | given)
        except ValidationError as exc:
            raise _config_error(exc) from exc


def parse_outage(raw: str, source: str = "DEALFLOW_SANDBOX_OUTAGE") -> dict[str, int]:
    """Parse `"esign:2, pm:1"` into `{"esign": 2, "pm": 1}` with a clear error.

    Only the format is checked (a lowercase system name, a count of calls); which
    systems exist is for whoever builds them to say.
    """
    outage: dict[str, int] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        match = _OUTAGE_PART.fullmatch(part)
        if match is None:
            raise ConfigError(
                f"{source}: expected system:calls (e.g. esign:2), got {part.strip()!r}"
            )
        outage[match[1]] = int(match[2])
    return outage


# How the variables are parsed where that differs from the field's own type.
_ENV_TYPES: dict[str, Any] = {
    # an outage is `esign:2, pm:1`, not JSON
    "sandbox_outage": Annotated[_Outage, BeforeValidator(parse_outage)],
    # the deadlines of the waits (`<wait>_<action>_after`, see `graph.workflow.WaitPolicy`)
    **{name: OptionalDuration for name in Settings.model_fields if name.endswith("_after")},
    **dict.fromkeys(("retention", "forget_after"), OptionalDuration),  # 90d, 7y, off
    # numbers in plain digits: `1_000` or `١٠` is a typo, never 1000 (see state.numerals)
    **{name: Annotated[info.annotation, BeforeValidator(plain_number)]
       for name, info in Settings.model_fields.items()
       if info.annotation in (int, float, Decimal)},
    **{name: Annotated[tuple[str, ...], BeforeValidator(
        lambda raw: tuple(part.strip() for part in raw.split(",") if part.strip()))]
       for name in ("allowed_hosts", "docusign_connect_key")},
}
# What `from_env` validates the variables' values with before the settings: every
# field optional, of the type its variable is parsed as (bounds and validators stay
# the settings' own). A field left unset keeps the settings' default.
_ENV_FIELDS: dict[str, Any] = {name: (_ENV_TYPES.get(name, info.annotation), None)
                               for name, info in Settings.model_fields.items()}
_EnvSettings = create_model("_EnvSettings", **_ENV_FIELDS)


def _config_error(exc: ValidationError, from_env: bool = False) -> ConfigError:
    """One line for the first error, naming the field and its environment variable."""
    first = exc.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):  # parse_outage's message names the variable already
        return ConfigError(str(cause))
    if from_env:  # `_EnvSettings` has the settings' field names, and none is nested
        field = str(first["loc"][0])
        return ConfigError(f"configuration {field} ({env_var(field)}): {first['msg']}")
    detail = first_error(exc, "settings")  # `field.path: message`, an odd path quoted
    field = str(first["loc"][0]) if first["loc"] else ""
    if field not in Settings.model_fields:  # an unknown override has no variable
        return ConfigError(f"configuration {detail}")
    where = detail.removesuffix(f": {first['msg']}")
    return ConfigError(f"configuration {where} ({env_var(field)}): {first['msg']}")
