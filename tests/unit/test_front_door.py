"""The front door's pure parts: the Host rule, the headers, throttle keys, plain numerals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import ValidationError

from dealflow.cli_parser import build_parser
from dealflow.mcp_server import security_settings
from dealflow.service import guards
from dealflow.service.auth import Throttled, Unauthenticated, client_key
from state.config import ConfigError, Settings
from state.durations import parse_duration
from state.models import DealInput, LeadAttributes
from state.numerals import plain_number, whole_number


@pytest.mark.parametrize(("header", "name"), [
    ("127.0.0.1:8000", "127.0.0.1"), ("LocalHost", "localhost"), ("[::1]:80", "[::1]"),
    ("deals.example.com", "deals.example.com"), ("a:b:c", None), ("", None), (None, None),
    ("evil@localhost", None), ("localhost:99999999", None), ("[::1", None)])
def test_host_header_names(header: str | None, name: str | None) -> None:
    assert guards.host_name(header) == name


def test_the_host_rule_is_shared_with_mcp() -> None:
    assert guards.allowed_host_names("0.0.0.0", ["Deals.Example.com"]) == [
        "localhost", "127.0.0.1", "[::1]", "deals.example.com"]
    assert guards.allowed_host_names("::", []) == list(guards.LOCAL_HOSTS)
    assert guards.allowed_host_names("fd00::1", [])[-1] == "[fd00::1]"
    mcp = security_settings("10.0.0.5", ["deals.example.com"])
    assert set(mcp.allowed_hosts) == {f"{h}{port}" for h in guards.allowed_host_names(
        "10.0.0.5", ["deals.example.com"]) for port in ("", ":*")}


def _app(settings: Settings) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.get("/slow-down")
    async def slow_down() -> None:
        raise Throttled(42)

    @app.exception_handler(Exception)
    async def unexpected(request: object, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": "internal"}, 500)

    guards.install(app, settings)
    return app


def test_the_front_door_refuses_other_hosts_and_secures_every_answer() -> None:
    client = TestClient(_app(Settings(allowed_hosts=("deals.example.com",))),
                        raise_server_exceptions=False)
    assert client.get("/ok").status_code == 200  # the address it was reached at
    for host in ("localhost:1234", "[::1]", "DEALS.example.com:443"):
        assert client.get("/ok", headers={"Host": host}).status_code == 200, host
    refused = client.get("/ok", headers={"Host": "evil.example"})
    assert refused.status_code == 400 and "is not served here" in refused.json()["error"]
    for answer in (refused, client.get("/ok"), client.get("/boom"), client.get("/nope")):
        assert answer.headers["content-security-policy"] == guards.STRICT_POLICY
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert client.get("/docs").headers["content-security-policy"] == guards.DOCS_POLICY
    throttled = client.get("/slow-down")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "42"
    assert throttled.json() == {"error": "too many failed authentications from your "
                                         "address; try again in 42 s"}
    assert Unauthenticated("x").http_status == 401


def test_failures_are_counted_per_address_an_ipv6_client_by_its_64() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == \
        "2001:db8:1:2::/64"
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key(None) == "unknown" and client_key("testclient") == "testclient"


@pytest.mark.parametrize("text", ["1_000", "١٠٠٠", "1 000", "0x10", "nan", "1,000", "--1"])
def test_only_plain_numerals_are_numbers(text: str) -> None:
    with pytest.raises(ValueError, match="plain"):
        plain_number(text)
    with pytest.raises(ValidationError, match=r"value\n.*plain number"):
        DealInput(deal_id="D-1", client="Acme", value=text)  # type: ignore[arg-type]


def test_plain_numerals_and_numbers_still_parse() -> None:
    assert DealInput(deal_id="D-1", client="A", value=" 12e2 ").value == Decimal("1200.00")
    assert DealInput(deal_id="D-1", client="A", value=.5).value == Decimal("0.50")  # type: ignore[arg-type]
    assert LeadAttributes(company_size="300").company_size == 300  # type: ignore[arg-type]
    for field in ("company_size", "engagement", "budget"):
        with pytest.raises(ValidationError, match=rf"{field}\n.*plain number"):
            LeadAttributes(**{field: "1_0"})
    assert whole_number(" 42 ") == 42
    with pytest.raises(ValueError, match="whole number"):
        whole_number("4.0")


@pytest.mark.parametrize("argv", [
    ["serve", "--port", "8_000"], ["serve", "--workers", "٢"], ["worker", "--concurrency", "1_0"],
    ["threads", "--limit", "1_0"], ["watch", "D-1", "--count", "1_0"],
    ["watch", "D-1", "--seconds", "1_0.5"], ["mcp", "--port", "8_765"],
    ["token", "create", "--role", "reviewer", "--name", "x", "--expires-in", "1_0d"]])
def test_numeric_flags_refuse_underscores(argv: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and argv[-2] in error, error


@pytest.mark.parametrize(("variable", "value"), [
    ("DEALFLOW_MAX_ATTEMPTS", "1_0"), ("DEALFLOW_LEASE_SECONDS", "2_0"),
    ("DEALFLOW_REVIEW_THRESHOLD_USD", "50_000"), ("DEALFLOW_AUTH_MAX_FAILURES", "1_0"),
    ("DEALFLOW_ALLOWED_HOSTS", "evil.example:80")])
def test_settings_refuse_non_plain_values(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_token_lifetimes_parse_as_durations() -> None:
    parsed = build_parser().parse_args(["token", "create", "--role", "reviewer", "--name",
                                        "x", "--expires-in", "30d"])
    assert parsed.expires_in == parse_duration("30d")
    assert build_parser().parse_args(["token", "list"]).token_action == "list"
