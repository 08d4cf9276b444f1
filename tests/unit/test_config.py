from decimal import Decimal

import pytest

from state.config import ConfigError, Settings, parse_outage


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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEALFLOW_SANDBOX_OUTAGE": "mail:2"}, "unknown system 'mail'"),
        ({"DEALFLOW_SANDBOX_OUTAGE": "esign"}, "expected system:calls"),
        ({"DEALFLOW_SANDBOX_OUTAGE": "esign:-1"}, "expected system:calls"),
        ({"DEALFLOW_MAX_ATTEMPTS": "0"}, "DEALFLOW_MAX_ATTEMPTS"),
        ({"DEALFLOW_SUPERVISOR": "vibes"}, "DEALFLOW_SUPERVISOR"),
        ({"DEALFLOW_RETRY_JITTER": "maybe"}, "expected true or false"),
        ({"DEALFLOW_TAX_RATE": "abc"}, "DEALFLOW_TAX_RATE"),
    ],
)
def test_bad_configuration_is_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_parse_outage_ignores_blank_parts() -> None:
    assert parse_outage("esign:1,,billing:0") == {"esign": 1, "billing": 0}
