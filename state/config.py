"""The one typed configuration object, with its environment fallbacks.

This is the only module that reads the environment. Everything else receives a
`Settings` (LangGraph passes it to nodes inside the runtime context).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

SANDBOX_SYSTEMS = ("crm", "pm", "esign", "billing")
SupervisorMode = Literal["rules", "llm", "hybrid"]


class ConfigError(ValueError):
    """A configuration value (flag or environment variable) is not usable."""


class Settings(BaseModel):
    """Everything dealflow can be configured with.

    Build it with `Settings.from_env()` to take the environment fallbacks, or
    construct it directly (tests, notebooks) to be explicit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str | None = Field(
        default=None, description="Postgres URL; None starts the embedded server in data_dir."
    )
    data_dir: Path = Field(
        default=Path(".dealflow"), description="Where the embedded server keeps its data."
    )
    supervisor: SupervisorMode = "rules"
    review_threshold_usd: Decimal = Field(default=Decimal("50000"), gt=0)
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts per step, the first included."
    )
    retry_initial_interval: float = Field(default=0.5, ge=0, le=60)
    retry_backoff_factor: float = Field(default=2.0, ge=1, le=10)
    retry_max_interval: float = Field(default=10.0, ge=0, le=600)
    retry_jitter: bool = True
    tax_rate: Decimal = Field(default=Decimal("0.08"), ge=0, lt=1)
    payment_terms_days: int = Field(default=30, ge=0, le=365)
    sandbox_outage: dict[str, int] = Field(
        default_factory=dict, description="System name → number of calls that fail."
    )
    sandbox_latency_ms: int = Field(default=0, ge=0, le=60_000)
    systems_factory: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:function building the systems of record (default: the sandbox).",
    )
    busy_wait_seconds: float = Field(
        default=0, ge=0, le=3600, description="Wait this long for a busy thread (0: fail)."
    )
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
        default=None, description="Bearer token for the MCP server's write tools over HTTP."
    )
    crash_at: str | None = Field(
        default=None, description="Crash-test hook: SIGKILL at step:phase (see state.crash)."
    )

    @field_validator("crash_at")
    @classmethod
    def _crash_point(cls, value: str | None) -> str | None:
        if value:
            from state.crash import parse_crash_point

            parse_crash_point(value)
        return value

    @field_validator("sandbox_outage")
    @classmethod
    def _known_systems(cls, value: dict[str, int]) -> dict[str, int]:
        for system, calls in value.items():
            if system not in SANDBOX_SYSTEMS:
                raise ValueError(
                    f"unknown system {system!r} (known: {', '.join(SANDBOX_SYSTEMS)})"
                )
            if calls < 0:
                raise ValueError(f"outage calls for {system!r} must be >= 0")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read the `DEALFLOW_*` and `DATABASE_URL` variables; explicit overrides win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field, var in _ENV_VARS.items():
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                values[field] = _parse_env(field, var, raw.strip())
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValueError as exc:
            raise ConfigError(_first_error(exc)) from exc


_ENV_VARS = {
    "database_url": "DATABASE_URL",
    "data_dir": "DEALFLOW_DATA_DIR",
    "supervisor": "DEALFLOW_SUPERVISOR",
    "review_threshold_usd": "DEALFLOW_REVIEW_THRESHOLD_USD",
    "max_attempts": "DEALFLOW_MAX_ATTEMPTS",
    "retry_initial_interval": "DEALFLOW_RETRY_INITIAL_INTERVAL",
    "retry_backoff_factor": "DEALFLOW_RETRY_BACKOFF_FACTOR",
    "retry_max_interval": "DEALFLOW_RETRY_MAX_INTERVAL",
    "retry_jitter": "DEALFLOW_RETRY_JITTER",
    "tax_rate": "DEALFLOW_TAX_RATE",
    "payment_terms_days": "DEALFLOW_PAYMENT_TERMS_DAYS",
    "sandbox_outage": "DEALFLOW_SANDBOX_OUTAGE",
    "sandbox_latency_ms": "DEALFLOW_SANDBOX_LATENCY_MS",
    "systems_factory": "DEALFLOW_SYSTEMS",
    "busy_wait_seconds": "DEALFLOW_BUSY_WAIT_SECONDS",
    "crash_at": "DEALFLOW_CRASH_AT",
    "openai_api_key": "OPENAI_API_KEY",
    "mcp_token": "DEALFLOW_MCP_TOKEN",
    "openai_base_url": "OPENAI_BASE_URL",
    "llm_model": "DEALFLOW_LLM_MODEL",
    "llm_timeout_seconds": "DEALFLOW_LLM_TIMEOUT_SECONDS",
    "llm_max_retries": "DEALFLOW_LLM_MAX_RETRIES",
    "llm_max_turns": "DEALFLOW_LLM_MAX_TURNS",
    "llm_max_refused_turns": "DEALFLOW_LLM_MAX_REFUSED_TURNS",
    "llm_budget_usd": "DEALFLOW_LLM_BUDGET_USD",
    "llm_price_input_per_mtok": "DEALFLOW_LLM_PRICE_INPUT_PER_MTOK",
    "llm_price_output_per_mtok": "DEALFLOW_LLM_PRICE_OUTPUT_PER_MTOK",
}


def _parse_env(field: str, var: str, raw: str) -> object:
    if field == "sandbox_outage":
        return parse_outage(raw, source=var)
    if field == "retry_jitter":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{var}: expected true or false, got {raw!r}")
    return raw


def parse_outage(raw: str, source: str = "DEALFLOW_SANDBOX_OUTAGE") -> dict[str, int]:
    """Parse `"esign:2,pm:1"` into `{"esign": 2, "pm": 1}` with a clear error."""
    outage: dict[str, int] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        system, sep, calls = part.partition(":")
        if not sep or not calls.strip().isdigit():
            raise ConfigError(f"{source}: expected system:calls (e.g. esign:2), got {part!r}")
        if system.strip() not in SANDBOX_SYSTEMS:
            raise ConfigError(
                f"{source}: unknown system {system.strip()!r} "
                f"(known: {', '.join(SANDBOX_SYSTEMS)})"
            )
        outage[system.strip()] = int(calls)
    return outage


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        var = _ENV_VARS.get(str(first["loc"][0]), field) if first["loc"] else field
        return f"configuration {field} ({var}): {first['msg']}"
    return str(exc)
