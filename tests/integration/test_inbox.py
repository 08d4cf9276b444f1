"""The reviewers' inbox in a real browser: Debian's Chromium, driven by Playwright.

`dealflow serve` runs as a real process with its workers; the browser is
`/usr/bin/chromium` (`.ci/run` installs it with apt-get; Playwright never
downloads one). `make screenshots` runs the first test with
`DEALFLOW_SCREENSHOTS=docs` to refresh the README's pictures.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from dealflow.api import DealService
from tests.integration.fencing import wait_until
from tests.integration.service_procs import Api

CHROMIUM = Path("/usr/bin/chromium")
BIG = {"client": "Initech", "value": "80000", "currency": "USD",
       "lead": {"company_size": 300, "engagement": 80, "budget": "200000"}}
SMALL = {"client": "Acme GmbH", "value": "9000",
         "lead": {"company_size": 300, "engagement": 80, "budget": "20000"}}
WAIT_MS = 90_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium (required: the browser tests are never skipped)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium "
                    "(bash .ci/run installs it)")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=["--no-sandbox"])
        yield found
        found.close()


def _token(api: Api) -> str:
    return api.reviewer["Authorization"].split(" ", 1)[1]


def _sign_in(browser: Browser, api: Api) -> Page:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(api.base + "/inbox")
    page.get_by_label("Token").fill(_token(api))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Reviews waiting for a person")).to_be_visible()
    return page


def _waiting(api: Api, deal: dict[str, Any]) -> None:
    assert api.post("/v1/deals", deal).status_code == 202
    wait_until(lambda: api.status(deal["deal_id"]) == "waiting_review", 120, "the review")


def test_sign_in_approve_with_a_comment_and_see_the_deal_move_on(
        api_factory: Any, service: DealService, browser: Browser) -> None:
    api: Api = api_factory()
    _waiting(api, {**BIG, "deal_id": "IN-1"})
    page = _sign_in(browser, api)
    row = page.locator("tr", has_text="IN-1")
    expect(row).to_contain_text("80,000.00 USD")
    expect(row).to_contain_text("over the 50,000 USD approval threshold")
    _screenshot(page, "inbox.png")
    page.get_by_role("link", name="IN-1").click()
    expect(page.get_by_role("heading", name="Initech · IN-1")).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)  # not for an approval
    expect(page.locator("p.ask")).to_have_text(
        "Approve Initech's implementation deal of $80,000.00? Deals over $50,000.00 need a "
        "person's approval.")
    expect(page.locator("ul.deadlines")).to_contain_text("Notify the reviewers again tomorrow, ")
    expect(page.locator("ol.timeline li", has_text="human review")).to_contain_text("waiting")
    expect(page.locator("table.audit")).to_contain_text("started waiting (review)")
    _screenshot(page, "review.png")
    page.evaluate("window.sameDocument = true")
    page.get_by_label("Comment").fill("budget confirmed by the CFO")
    page.get_by_role("button", name="Approve", exact=True).click()
    expect(page.locator("#status")).to_have_text("waiting_signature", timeout=WAIT_MS)
    assert page.evaluate("window.sameDocument") is True  # no reload
    # the page follows: the audit trail now holds the decision, with who and why
    expect(page.locator("table.audit")).to_contain_text("budget confirmed by the CFO",
                                                        timeout=WAIT_MS)
    assert _token(api) not in page.url
    decision = next(e for e in service.audit("IN-1") if e.action == "review.decision")
    assert (decision.actor, decision.reason) == ("rita-1", "budget confirmed by the CFO")
    page.goto(api.base + "/inbox")
    expect(page.locator("tr", has_text="IN-1")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Token")).to_be_visible()
    page.goto(api.base + "/inbox/reviews/IN-1")  # signed out: back to the sign-in form
    expect(page.get_by_label("Token")).to_be_visible()


def test_a_reviewer_edits_the_value_and_approves_on_a_phone(
        api_factory: Any, service: DealService, browser: Browser) -> None:
    api: Api = api_factory()
    _waiting(api, {**BIG, "deal_id": "IN-ED"})
    page = _sign_in(browser, api)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/inbox", "/inbox/reviews/IN-ED"):  # the list, then the review: no overflow
        page.goto(api.base + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    page.get_by_label("Value (USD)").fill("45000.00")
    page.get_by_label("Payment terms (days)").fill("oops")
    page.get_by_role("button", name="Approve with these terms").click()
    expect(page.locator("#notice")).to_contain_text("payment_terms_days")
    assert service.status("IN-ED").status == "waiting_review"
    page.reload()
    page.get_by_label("Value (USD)").fill("45000.00")
    page.get_by_label("Comment").fill("phase one only")
    page.get_by_role("button", name="Approve with these terms").click()
    expect(page.locator("#status")).to_have_text("waiting_signature", timeout=WAIT_MS)
    assert service.status("IN-ED").context["deal"]["value"] == "45000.00"
    decision = next(e for e in service.audit("IN-ED") if e.action == "review.decision")
    assert decision.detail["edited"] == {"value": {"before": "80000.00", "after": "45000.00"}}
    assert (decision.actor, decision.reason) == ("rita-1", "phase one only")


def test_a_failed_step_is_retried_from_its_review(
        api_factory: Any, service: DealService, browser: Browser) -> None:
    api: Api = api_factory(DEALFLOW_SANDBOX_OUTAGE="pm:3", DEALFLOW_RETRY_INITIAL_INTERVAL="0.05",
                           DEALFLOW_RETRY_MAX_INTERVAL="0.1")
    _waiting(api, {**SMALL, "deal_id": "IN-2"})
    page = _sign_in(browser, api)
    page.goto(api.base + "/inbox?kind=failure")
    expect(page.locator("tr", has_text="IN-2")).to_contain_text("failure")
    page.get_by_role("link", name="IN-2").click()
    expect(page.get_by_role("heading", name="Failed steps")).to_be_visible()
    expect(page.locator("section", has_text="Failed steps")).to_contain_text("create_project")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    page.get_by_role("button", name="Retry").click()
    expect(page.locator("#status")).to_have_text("waiting_signature", timeout=WAIT_MS)
    assert service.status("IN-2").context["failures"] == []


def test_every_value_is_escaped(api_factory: Any, browser: Browser) -> None:
    api: Api = api_factory()
    _waiting(api, {**BIG, "deal_id": "IN-3", "client": "<script>alert(1)</script>"})
    page = _sign_in(browser, api)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.reload()
    expect(page.locator("tr", has_text="IN-3")).to_contain_text("<script>alert(1)</script>")
    page.get_by_role("link", name="IN-3").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("<script>alert(1)</script>")
    assert dialogs == []
    assert "<script>alert(1)</script>" not in page.content()  # only as &lt;script&gt;


def test_a_review_decided_over_the_api_while_the_page_is_open(
        api_factory: Any, browser: Browser) -> None:
    api: Api = api_factory()
    _waiting(api, {**BIG, "deal_id": "IN-4"})
    page = _sign_in(browser, api)
    page.get_by_role("link", name="IN-4").click()
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_enabled()
    decided = api.post("/v1/deals/IN-4/review", {"decision": "approve", "comment": "api"},
                       api.operator)
    assert decided.status_code == 202
    expect(page.locator("#notice")).to_contain_text("This review was decided", timeout=WAIT_MS)
    expect(page.get_by_role("button", name="Approve", exact=True)).to_be_disabled()
    status, message = page.evaluate("""async () => {
        const form = document.getElementById('decide-form');
        const body = new FormData(form); body.set('decision', 'reject');
        const answer = await fetch(form.action, {method: 'POST', body,
                                                 headers: {Accept: 'application/json'}});
        return [answer.status, (await answer.json()).message];
    }""")
    assert status == 409 and "the deal was already approved by ops-1" in message
    page.goto(api.base + "/inbox")
    expect(page.locator("tr", has_text="IN-4")).to_have_count(0)


def test_forms_need_their_csrf_token_and_the_token_never_travels_in_a_url(
        api_factory: Any) -> None:
    api: Api = api_factory(workers=0)
    client = httpx.Client(base_url=api.base, timeout=60)
    signin = client.get("/inbox")
    csrf = re.search(r'name="csrf" value="([^"]+)"', signin.text)
    assert csrf is not None and 'method="post"' in signin.text
    forged = client.post("/inbox/signin", data={"token": _token(api), "csrf": "forged"})
    assert forged.status_code == 403 and "sign in again" in forged.text
    fresh = re.search(r'name="csrf" value="([^"]+)"', forged.text)  # the form comes anew
    assert fresh is not None and fresh.group(1) != csrf.group(1)
    wrong = client.post("/inbox/signin", data={"token": "not-a-token", "csrf": fresh.group(1)})
    assert wrong.status_code == 401 and "Unknown or revoked token" in wrong.text
    again = re.search(r'name="csrf" value="([^"]+)"', wrong.text)
    assert again is not None
    ok = client.post("/inbox/signin", data={"token": _token(api), "csrf": again.group(1)})
    assert ok.status_code == 303 and "HttpOnly" in ok.headers["set-cookie"]
    assert "samesite=strict" in ok.headers["set-cookie"].lower()
    assert client.post("/inbox/reviews/NOPE", data={"decision": "approve",
                                                   "csrf": "forged"}).status_code == 403
    assert client.get("/inbox/static/inbox.js").status_code == 200
    assert "http" not in client.get("/inbox").text.split("<main")[0].replace(
        'name="viewport"', "")  # no stylesheet or script from another host


def _screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("DEALFLOW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)
