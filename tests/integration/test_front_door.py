"""The service's front door, on real `dealflow serve` processes (issue 28, defect 7).

Security headers on every answer (the inbox's strict policy), the Host rule
shared with MCP, throttled authentication shared by every API process on the
database, tokens that expire (and inbox sessions that end with them), and
numerals in plain digits only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from dealflow.api import DealService
from tests.conftest import cli_env, run_cli
from tests.integration.fencing import wait_until
from tests.integration.service_procs import Api

CHROMIUM = Path("/usr/bin/chromium")
STRICT = ("default-src 'none'", "script-src 'self'", "style-src 'self'",
          "frame-ancestors 'none'", "form-action 'self'")


def _signed_in(api: Api, token: str, address: str | None = None) -> httpx.Client:
    """An httpx client that went through the inbox's sign-in form with `token`."""
    transport = httpx.HTTPTransport(local_address=address) if address else None
    client = httpx.Client(base_url=api.base, timeout=60, transport=transport)
    form = client.get("/inbox")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, form.text
    client.post("/inbox/signin", data={"token": token, "csrf": csrf.group(1)})
    return client


def _sign_in_status(client: httpx.Client, token: str) -> httpx.Response:
    form = client.get("/inbox")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None, form.text
    return client.post("/inbox/signin", data={"token": token, "csrf": csrf.group(1)})


def _assert_secured(answer: httpx.Response, strict: bool = True) -> None:
    policy = answer.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, (answer.request.url, answer.headers)
    assert answer.headers.get("x-frame-options") == "DENY"
    assert answer.headers.get("x-content-type-options") == "nosniff"
    assert answer.headers.get("referrer-policy") == "same-origin"
    if strict:
        assert all(part in policy for part in STRICT), policy
        assert "unsafe-inline" not in policy and "http" not in policy, policy


def test_every_answer_is_secured_and_a_foreign_host_is_refused(api_factory: Any) -> None:
    api: Api = api_factory(workers=0, DEALFLOW_ALLOWED_HOSTS="deals.example.com")
    token = api.reviewer["Authorization"].split(" ", 1)[1]
    client = _signed_in(api, token)
    inbox = client.get("/inbox")
    assert "Reviews waiting for a person" in inbox.text
    for answer in (inbox, client.get("/inbox/static/inbox.js"), client.get("/inbox/NOPE"),
                   api.get("/healthz"), api.get("/v1/deals"), api.get("/v1/deals", {}),
                   api.get("/openapi.json"), httpx.get(api.base + "/inbox", timeout=60)):
        _assert_secured(answer)
    docs = httpx.get(api.base + "/docs", timeout=60)  # Swagger UI, served from here
    assert docs.status_code == 200 and "swagger-ui-bundle.js" in docs.text
    _assert_secured(docs, strict=False)
    port = api.base.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                 "deals.example.com", "Deals.Example.COM:443"):
        assert httpx.get(api.base + "/healthz", headers={"Host": host},
                         timeout=60).status_code == 200, host
    for host in ("evil.example", f"evil.example:{port}", "deals.example.com.evil.example",
                 "127.0.0.1.nip.io", "localhost@evil.example"):
        refused = httpx.get(api.base + "/inbox", headers={"Host": host}, timeout=60)
        assert refused.status_code == 400, (host, refused.status_code)
        assert "is not served here" in refused.json()["error"]
        _assert_secured(refused)
    with_token = httpx.get(api.base + "/v1/deals", timeout=60,
                           headers={**api.operator, "Host": "evil.example"})
    assert with_token.status_code == 400 and set(with_token.json()) == {"error"}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, as the inbox's browser tests use it (never skipped)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=["--no-sandbox"])
        yield found
        found.close()


def test_the_browser_enforces_the_inbox_policy(api_factory: Any, browser: Browser) -> None:
    api: Api = api_factory(workers=0)
    page = browser.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(api.base + "/inbox")
    page.get_by_label("Token").fill(api.reviewer["Authorization"].split(" ", 1)[1])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Reviews waiting for a person").wait_for()
    # the inbox's own stylesheet applies; nothing of it is refused
    assert page.evaluate("getComputedStyle(document.body).margin") != "8px"
    assert not [line for line in console if "Content Security Policy" in line], console
    with pytest.raises(Exception, match=r"Content Security Policy|Refused"):
        page.add_script_tag(content="window.injected = true")  # an injected inline script
    assert page.evaluate("window.injected === undefined")
    page.close()


def test_failed_authentication_is_throttled_across_processes(
        api_factory: Any, service: DealService) -> None:
    env = {"DEALFLOW_AUTH_MAX_FAILURES": "4", "DEALFLOW_AUTH_FAILURE_WINDOW_SECONDS": "30"}
    first: Api = api_factory(workers=0, **env)
    second: Api = api_factory(workers=0, **env)
    for _ in range(30):  # successes are never counted, never slowed
        assert first.get("/v1/deals").status_code == 200
    wrong = {"Authorization": "Bearer not-a-token"}
    answers = [api.get("/v1/deals", wrong) for api in (first, second, first, second)]
    assert [a.status_code for a in answers] == [401] * 4, [a.text for a in answers]
    refused = second.get("/v1/deals", wrong)
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 30
    assert "too many failed" in refused.json()["error"]
    # while throttled, a right token is refused too (else guessing would go on), and the
    # inbox's sign-in shares the count
    assert first.get("/v1/deals").status_code == 429
    with httpx.Client(base_url=second.base, timeout=60) as browser:
        page = _sign_in_status(browser, second.reviewer["Authorization"].split(" ", 1)[1])
    assert page.status_code == 429 and "Too many failed" in page.text
    assert "retry-after" in page.headers
    # another address is not throttled; 300 wrong tokens from it at once, on both
    # processes, get exactly 4 answers of 401 (and old windows of others are swept)
    with service.pool.connection() as conn:
        conn.execute("INSERT INTO dealflow_auth_failures SELECT 'gone-' || n, 9,"
                     " now() - interval '2 hours' FROM generate_series(1, 500) n")
    clients = [httpx.Client(base_url=api.base, timeout=120, limits=httpx.Limits(
        max_connections=8), transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        for api in (first, second)]
    assert clients[0].get("/v1/deals", headers=first.operator).status_code == 200
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda n: clients[n % 2].get("/v1/deals", headers=wrong)
                              .status_code, range(300)))
    assert sorted(codes) == [401] * 4 + [429] * 296, codes
    with service.pool.connection() as conn:
        rows = conn.execute("SELECT client, failures FROM dealflow_auth_failures"
                            " ORDER BY client").fetchall()
    assert [(row["client"], row["failures"]) for row in rows] == [
        ("127.0.0.1", 5), ("127.0.0.2", 300)]  # right tokens not counted


def test_the_window_ends_and_the_address_is_answered_again(api_factory: Any) -> None:
    api: Api = api_factory(workers=0, DEALFLOW_AUTH_MAX_FAILURES="2",
                           DEALFLOW_AUTH_FAILURE_WINDOW_SECONDS="2")
    wrong = {"Authorization": "Bearer not-a-token"}
    assert [api.get("/v1/deals", wrong).status_code for _ in range(3)][-1] == 429
    wait_until(lambda: api.get("/v1/deals").status_code == 200, 60, "the window's end")


def test_tokens_expire_and_their_inbox_sessions_end_with_them(
        api_factory: Any, service: DealService, database_url: str) -> None:
    api: Api = api_factory(workers=0)
    env = cli_env(database_url)
    made = run_cli(["token", "create", "--role", "reviewer", "--name", "temp",
                    "--expires-in", "1h", "--json"], env)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["expires_at"] is not None and created["role"] == "reviewer"
    listed = json.loads(run_cli(["token", "list", "--json"], env).stdout)["tokens"]
    temp = next(t for t in listed if t["name"] == "temp")
    assert temp["expires_at"] == created["expires_at"] and temp["state"] == "active"
    assert next(t for t in listed if t["name"] == "ops-1")["expires_at"] is None
    text = run_cli(["token", "list"], env).stdout
    assert re.search(r"temp\s+reviewer\s+active\s+\S+ \S+ \d{4}-\d\d-\d\d", text), text
    bearer = {"Authorization": f"Bearer {created['token']}"}
    assert api.get("/v1/deals", bearer).status_code == 200
    browser = _signed_in(api, created["token"])
    assert "Reviews waiting for a person" in browser.get("/inbox").text
    with service.pool.connection() as conn:
        session = conn.execute("SELECT s.expires_at = t.expires_at AS bounded FROM"
                               " dealflow_inbox_sessions s JOIN dealflow_api_tokens t"
                               " ON t.name = s.token_name WHERE t.name = 'temp'").fetchone()
        assert session is not None and session["bounded"]  # 1 h, not the usual 12 h
        conn.execute("UPDATE dealflow_api_tokens SET expires_at = clock_timestamp()"
                     " - interval '1 second' WHERE name = 'temp'")  # its hour is over
    expired = api.get("/v1/deals", bearer)
    assert expired.status_code == 401
    assert re.fullmatch(r"the token 'temp' expired at \S+ \S+ UTC; ask for a new one",
                        expired.json()["error"]), expired.json()
    assert "Sign in" in browser.get("/inbox").text  # the session ended with its token
    again = _sign_in_status(browser, created["token"])
    assert again.status_code == 401 and "expired at" in again.text
    assert json.loads(run_cli(["token", "list", "--json"], env).stdout)["tokens"][-1][
        "state"] == "expired"
    bad = run_cli(["token", "create", "--role", "reviewer", "--name", "t2",
                   "--expires-in", "30 days"], env)
    assert bad.returncode == 2 and "--expires-in" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_numerals_with_underscores_are_refused_naming_the_field(
        api_factory: Any, service: DealService, database_url: str) -> None:
    api: Api = api_factory(workers=0)
    for field, body in (("value", {"value": "1_000"}), ("value", {"value": "١٠٠٠"}),
                        ("lead.company_size", {"value": "10", "lead": {"company_size": "1_0"}}),
                        ("lead.budget", {"value": "10", "lead": {"budget": "2_000"}})):
        answer = api.post("/v1/deals", {"deal_id": "U-1", "client": "Acme", **body})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"].startswith(f"{field}: "), answer.json()
        assert "plain number" in answer.json()["error"]
    env = cli_env(database_url)
    cli = run_cli(["run", "--deal-id", "U-2", "--client", "Acme", "--value", "1_000"], env)
    assert cli.returncode == 2 and "value" in cli.stderr and "plain number" in cli.stderr
    setting = run_cli(["threads"], {**env, "DEALFLOW_MAX_ATTEMPTS": "1_0"})
    assert setting.returncode == 2 and "DEALFLOW_MAX_ATTEMPTS" in setting.stderr
    flag = run_cli(["threads", "--limit", "1_0"], env)
    assert flag.returncode == 2 and "--limit" in flag.stderr
    query = api.get("/v1/deals?limit=1_0")
    assert query.status_code == 422 and query.json()["error"].startswith("limit: "), query.text
    with service.pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM dealflow_deals").fetchone()["n"] == 0
