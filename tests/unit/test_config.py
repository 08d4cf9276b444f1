from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from state import config, models
from state.config import ConfigError, Settings, parse_outage

# Every variable `Settings.from_env` reads, with a value that is not the default.
ALL_VARIABLES = {
    "DATABASE_URL": "postgresql://env/db",
    "DEALFLOW_DATA_DIR": "/tmp/dealflow-data",
    "DEALFLOW_DIRECT_DATABASE_URL": "postgresql://direct/db",
    "DEALFLOW_POOL_MIN_SIZE": "2",
    "DEALFLOW_POOL_MAX_SIZE": "6",
    "DEALFLOW_POOL_TIMEOUT_SECONDS": "4.5",
    "DEALFLOW_QUEUE_POOL_MAX_SIZE": "3",
    "DEALFLOW_SUPERVISOR": "hybrid",
    "DEALFLOW_REVIEW_THRESHOLD_USD": "1000",
    "DEALFLOW_MAX_ATTEMPTS": "5",
    "DEALFLOW_RETRY_INITIAL_INTERVAL": "1.5",
    "DEALFLOW_RETRY_BACKOFF_FACTOR": "3",
    "DEALFLOW_RETRY_MAX_INTERVAL": "20",
    "DEALFLOW_RETRY_JITTER": "off",
    "DEALFLOW_TAX_RATE": "0.2",
    "DEALFLOW_PAYMENT_TERMS_DAYS": "45",
    "DEALFLOW_SANDBOX_OUTAGE": "esign:2",
    "DEALFLOW_SANDBOX_LATENCY_MS": "7",
    "DEALFLOW_SYSTEMS": "my.systems:build",
    "DEALFLOW_WORKFLOW": "my.process:WORKFLOW",
    "DEALFLOW_BUSY_WAIT_SECONDS": "2.5",
    "DEALFLOW_LEASE_SECONDS": "12",
    "DEALFLOW_WEBHOOK_SECRET": "whsec-env",
    "DEALFLOW_WORKER_STALLED_SECONDS": "7",
    "DEALFLOW_CRASH_AT": "send_for_signature:after_effect",
    "OPENAI_API_KEY": "sk-env",
    "DEALFLOW_MCP_TOKEN": "mcp-env",
    "DEALFLOW_MCP_IDENTITY": "deals-bot",
    "OPENAI_BASE_URL": "http://llm.local/v1",
    "DEALFLOW_LLM_MODEL": "gpt-env",
    "DEALFLOW_LLM_TIMEOUT_SECONDS": "12",
    "DEALFLOW_LLM_MAX_RETRIES": "1",
    "DEALFLOW_LLM_MAX_TURNS": "20",
    "DEALFLOW_LLM_MAX_REFUSED_TURNS": "5",
    "DEALFLOW_LLM_BUDGET_USD": "0.5",
    "DEALFLOW_LLM_PRICE_INPUT_PER_MTOK": "1.5",
    "DEALFLOW_LLM_PRICE_OUTPUT_PER_MTOK": "6",
    "DEALFLOW_REVIEW_REMIND_AFTER": "90s",
    "DEALFLOW_REVIEW_ESCALATE_AFTER": "15m",
    "DEALFLOW_REVIEW_EXPIRE_AFTER": "4h",
    "DEALFLOW_SIGNATURE_REMIND_AFTER": "2d",
    "DEALFLOW_SIGNATURE_EXPIRE_AFTER": "off",
    "DEALFLOW_NOTIFY_URL": "https://hooks.example/T0/B0",
    "DEALFLOW_ESCALATION_CONTACT": "vp-sales@example.com",
    "DEALFLOW_NOTIFY_TIMEOUT_SECONDS": "4.5",
    "DEALFLOW_MAX_BODY_BYTES": "65536",
    "DEALFLOW_ALLOWED_HOSTS": "deals.example.com, 10.0.0.5",
    "DEALFLOW_AUTH_MAX_FAILURES": "5",
    "DEALFLOW_AUTH_FAILURE_WINDOW_SECONDS": "120",
    "DEALFLOW_RATE_LIMITS": "hubspot=100/10s,stripe=25/s",
    "DEALFLOW_RETENTION": "90d",
    "DEALFLOW_FORGET_AFTER": "7y",
    "DEALFLOW_FORGET_ARCHIVE": "/var/backups/dealflow",
    "DEALFLOW_CRM": "hubspot",
    "DEALFLOW_PM": "asana",
    "DEALFLOW_ESIGN": "docusign",
    "DEALFLOW_BILLING": "stripe",
    "DEALFLOW_STRIPE_API_KEY": "sk_test_env",
    "DEALFLOW_STRIPE_API_BASE": "http://127.0.0.1:12111",
    "DEALFLOW_DOCUSIGN_BASE_URI": "https://demo.docusign.net/restapi",
    "DEALFLOW_DOCUSIGN_ACCOUNT_ID": "acc-1",
    "DEALFLOW_DOCUSIGN_ACCESS_TOKEN": "ds-token",
    "DEALFLOW_DOCUSIGN_CONNECT_KEY": "key-old, key-new",
    "DEALFLOW_HUBSPOT_TOKEN": "pat-na1-x",
    "DEALFLOW_HUBSPOT_API_BASE": "http://127.0.0.1:12112",
    "DEALFLOW_ASANA_TOKEN": "asana-x",
    "DEALFLOW_ASANA_API_BASE": "http://127.0.0.1:12113",
    "DEALFLOW_ASANA_WORKSPACE": "1200",
    "DEALFLOW_ASANA_TEAM": "1300",
    "DEALFLOW_PROVIDER_TIMEOUT_SECONDS": "5",
    "DEALFLOW_PROVIDER_RETRIES": "2",
    "DEALFLOW_PROVIDER_MAX_WAIT_SECONDS": "30",
    "DEALFLOW_PROVIDER_LAG_SECONDS": "10",
}


def test_environment_fallbacks_and_overrides() -> None:
    env = {"DATABASE_URL": "postgresql://x/y", "DEALFLOW_SANDBOX_OUTAGE": "esign:2, pm:1",
           "DEALFLOW_SANDBOX_LATENCY_MS": "25", "DEALFLOW_REVIEW_THRESHOLD_USD": "100000",
           "DEALFLOW_RETRY_JITTER": "false"}
    settings = Settings.from_env(env, database_url="postgresql://flag/wins")
    assert settings.database_url == "postgresql://flag/wins"
    assert settings.sandbox_outage == {"esign": 2, "pm": 1}
    assert settings.sandbox_latency_ms == 25
    assert settings.review_threshold_usd == Decimal("100000")
    assert settings.retry_jitter is False
    assert Settings.from_env({}).supervisor == "rules"


def test_every_variable_reaches_its_field() -> None:
    settings = Settings.from_env(ALL_VARIABLES)
    defaults = Settings()
    unchanged = [name for name in Settings.model_fields
                 if getattr(settings, name) == getattr(defaults, name)]
    assert unchanged == []
    assert settings.systems_factory == "my.systems:build"
    assert settings.crash_at == "send_for_signature:after_effect"
    assert settings.busy_wait_seconds == 2.5
    assert (settings.review_remind_after, settings.review_escalate_after,
            settings.review_expire_after, settings.signature_remind_after) == (
        timedelta(seconds=90), timedelta(minutes=15), timedelta(hours=4), timedelta(days=2))
    assert settings.signature_expire_after is None  # `off`: no such deadline
    assert settings.retention == timedelta(days=90)
    assert Settings.from_env({"DEALFLOW_RETENTION": "0s"}).retention == timedelta(0)
    assert Settings().retention is None  # off unless set
    assert settings.forget_after == timedelta(days=7 * 365)  # a year is 365 days
    assert Settings().forget_after is None and Settings().forget_archive is None
    assert settings.data_dir == Path("/tmp/dealflow-data")
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-env"
    assert settings.mcp_token is not None
    assert settings.mcp_token.get_secret_value() == "mcp-env"
    assert settings.llm_price_output_per_mtok == Decimal("6")
    assert [key.get_secret_value() for key in settings.docusign_connect_key] == [
        "key-old", "key-new"]


def test_aliases_and_prefix() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://alias/db",
                                  "OPENAI_BASE_URL": "http://alias/v1",
                                  "DEALFLOW_LLM_MODEL": "gpt-prefixed"})
    assert settings.database_url == "postgresql://alias/db"
    assert settings.openai_base_url == "http://alias/v1"
    assert settings.llm_model == "gpt-prefixed"


@pytest.mark.parametrize(
    "env",
    [
        {"DEALFLOW_DATABASE_URL": "postgresql://prefixed/alias"},  # aliases take no prefix
        {"DEALFLOW_OPENAI_BASE_URL": "http://prefixed/v1"},
        {"DEALFLOW_SYSTEMS_FACTORY": "my.systems:build"},  # the variable is DEALFLOW_SYSTEMS
        {"LLM_MODEL": "gpt-unprefixed"},
        {"dealflow_llm_model": "gpt-lower", "database_url": "postgresql://lower/case"},
        {"DEALFLOW_SOMETHING": "unknown", "DEALFLOW_": "x", "HOME": "/root"},
    ],
)
def test_other_variables_are_ignored(env: dict[str, str]) -> None:
    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("false", False), ("0", False), ("no", False), ("off", False), ("False", False),
     ("true", True), ("1", True), ("yes", True), ("on", True), ("TRUE", True)],
)
def test_booleans_are_parsed(raw: str, expected: bool) -> None:
    assert Settings.from_env({"DEALFLOW_RETRY_JITTER": raw}).retry_jitter is expected


def test_blank_values_are_ignored_and_values_trimmed() -> None:
    blank = {"DATABASE_URL": "", "DEALFLOW_MAX_ATTEMPTS": "   ", "DEALFLOW_SANDBOX_OUTAGE": " ",
             "DEALFLOW_RETRY_JITTER": "", "OPENAI_API_KEY": "\t"}
    assert Settings.from_env(blank) == Settings()
    assert Settings.from_env({"DEALFLOW_MAX_ATTEMPTS": " 7 "}).max_attempts == 7


def test_settings_is_explicit_and_from_env_reads_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEALFLOW_LLM_MODEL", "gpt-from-os")
    monkeypatch.setenv("DATABASE_URL", "postgresql://os/env")
    monkeypatch.setenv("DEALFLOW_SOMETHING", "not a setting")
    assert Settings().llm_model == "gpt-4o-mini"
    assert Settings().database_url is None
    explicit = Settings(database_url="postgresql://explicit", retry_jitter=False)
    assert explicit.llm_model == "gpt-4o-mini"
    assert explicit.database_url == "postgresql://explicit"
    settings = Settings.from_env()
    assert settings.llm_model == "gpt-from-os"
    assert settings.database_url == "postgresql://os/env"
    assert Settings.from_env({}).llm_model == "gpt-4o-mini"  # a given mapping replaces os.environ


def test_overrides_win_and_none_does_not() -> None:
    env = {"DEALFLOW_MAX_ATTEMPTS": "5", "DEALFLOW_SUPERVISOR": "vibes"}
    settings = Settings.from_env(env, max_attempts=None, supervisor="llm")
    assert settings.max_attempts == 5
    assert settings.supervisor == "llm"  # the bad variable is not read at all


def test_overrides_are_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"^configuration max_attempts \(DEALFLOW_MAX_ATTEMPTS\)"):
        Settings.from_env({}, max_attempts=0)
    with pytest.raises(ConfigError, match=r"sandbox_outage\.esign \(DEALFLOW_SANDBOX_OUTAGE\)"):
        Settings.from_env({}, sandbox_outage={"esign": -1})
    with pytest.raises(ConfigError, match="Extra inputs are not permitted"):
        Settings.from_env({}, no_such_setting=1)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEALFLOW_SANDBOX_OUTAGE": "Mail!:2"}, "expected system:calls"),
        ({"DEALFLOW_SANDBOX_OUTAGE": "esign"}, "expected system:calls"),
        ({"DEALFLOW_SANDBOX_OUTAGE": "esign:-1"}, "expected system:calls"),
        ({"DEALFLOW_SANDBOX_OUTAGE": '{"esign": 2}'}, "expected system:calls"),
        ({"DEALFLOW_MAX_ATTEMPTS": "0"}, "DEALFLOW_MAX_ATTEMPTS"),
        ({"DEALFLOW_SUPERVISOR": "vibes"}, "DEALFLOW_SUPERVISOR"),
        ({"DEALFLOW_RETRY_JITTER": "maybe"}, "DEALFLOW_RETRY_JITTER.*valid boolean"),
        ({"DEALFLOW_TAX_RATE": "abc"}, "DEALFLOW_TAX_RATE"),
        ({"DEALFLOW_SYSTEMS": "not a factory"}, r"systems_factory \(DEALFLOW_SYSTEMS\)"),
        ({"DEALFLOW_CRASH_AT": "nowhere"}, r"crash_at \(DEALFLOW_CRASH_AT\)"),
        ({"DEALFLOW_LLM_MODEL": "x" * 101}, r"llm_model \(DEALFLOW_LLM_MODEL\)"),
    ],
)
def test_bad_configuration_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Settings.from_env(env)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEALFLOW_MAX_ATTEMPTS": "0"},
         "configuration max_attempts (DEALFLOW_MAX_ATTEMPTS): "
         "Input should be greater than or equal to 1"),
        ({"DEALFLOW_SANDBOX_OUTAGE": "esign"},
         "DEALFLOW_SANDBOX_OUTAGE: expected system:calls (e.g. esign:2), got 'esign'"),
        ({"DEALFLOW_RETRY_JITTER": "maybe"},
         "configuration retry_jitter (DEALFLOW_RETRY_JITTER): "
         "Input should be a valid boolean, unable to interpret input"),
    ],
)
def test_error_messages_are_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == message


def test_parse_outage_ignores_blank_parts() -> None:
    assert parse_outage("esign:1,,billing:0") == {"esign": 1, "billing": 0}


def test_parse_outage_checks_the_format_not_the_system() -> None:
    assert parse_outage(" mail : 2 , crm_v2:0 ") == {"mail": 2, "crm_v2": 0}
    with pytest.raises(ConfigError) as caught:
        parse_outage("esign:1, Mail!:2", source="--outage")
    assert str(caught.value) == "--outage: expected system:calls (e.g. esign:2), got 'Mail!:2'"
    for bad in ("esign", "esign:", ":2", "esign:x", "2esign:1", "esign:1:2"):
        with pytest.raises(ConfigError, match="expected system:calls"):
            parse_outage(bad)


def test_settings_outage_is_checked() -> None:
    assert Settings(sandbox_outage={"mail": 1}).sandbox_outage == {"mail": 1}
    with pytest.raises(ValidationError):
        Settings(sandbox_outage={"esign": -1})
    with pytest.raises(ValidationError):
        Settings(sandbox_outage={"Mail!": 1})


def test_settings_stays_a_plain_frozen_model() -> None:
    settings = Settings(review_threshold_usd=Decimal("100"))
    assert settings.review_threshold_usd == Decimal("100")
    with pytest.raises(ValidationError):
        Settings(no_such_setting=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        settings.max_attempts = 4  # type: ignore[misc]
    copied = settings.model_copy(update={"database_url": "postgresql://copy"})
    assert copied.database_url == "postgresql://copy"
    assert '"review_threshold_usd":"100"' in settings.model_dump_json()


def test_the_systems_and_modes_are_declared_elsewhere() -> None:
    assert not hasattr(config, "SANDBOX_SYSTEMS")
    assert config.SupervisorMode is models.SupervisorMode


def test_deadline_durations_are_checked_with_their_variable() -> None:
    for raw in ("5 weeks", "-3h", "1e9d", "soon"):
        with pytest.raises(ConfigError) as caught:
            Settings.from_env({"DEALFLOW_REVIEW_EXPIRE_AFTER": raw})
        assert "DEALFLOW_REVIEW_EXPIRE_AFTER" in str(caught.value)
        assert "\n" not in str(caught.value)
    assert Settings.from_env({"DEALFLOW_REVIEW_REMIND_AFTER": "NEVER"}).review_remind_after \
        is None
