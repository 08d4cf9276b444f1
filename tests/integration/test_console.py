"""The operations console in a real browser: Debian's Chromium, driven by Playwright.

`dealflow serve` runs as a real process with its workers, as in `test_inbox.py`;
the console is signed into with an operator token. Every page is measured at
1280 and 390 px (no sideways scrolling on a phone), and each action is taken as
an operator would: cancel a waiting deal, fork a completed one, retry a failed
job. The actions themselves are tested without a browser in
`test_console_actions.py`.
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
from dealflow.service.jobs import build_queue, defer
from state.audit import Origin
from state.registry import thread_id_for
from tests.helpers import make_deal
from tests.integration.fencing import wait_until
from tests.integration.service_procs import Api, webhook
from tests.integration.test_inbox import BIG, CHROMIUM, SMALL

XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
WIDTHS = (1280, 390)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium (required: the browser tests are never skipped)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        found = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=["--no-sandbox"])
        yield found
        found.close()


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].split(" ", 1)[1]


def _console(browser: Browser, api: Api, width: int = 1280) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(api.base + "/console")
    page.get_by_label("Token").fill(_token(api.operator))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Deals", exact=True)).to_be_visible()
    return page


def _started(api: Api, deal: dict[str, Any], status: str) -> None:
    assert api.post("/v1/deals", deal).status_code == 202
    wait_until(lambda: api.status(deal["deal_id"]) == status, 120, f"{deal['deal_id']} {status}")


def _signed(api: Api, deal_id: str) -> None:
    envelope = api.get(f"/v1/deals/{deal_id}").json()["context"]["envelope"]["envelope_id"]
    answer = webhook(api, {"event_id": f"evt-{deal_id}", "envelope_id": envelope,
                           "event": "signature.completed"})
    assert answer.status_code == 202, answer.text
    wait_until(lambda: api.status(deal_id) == "completed", 120, f"{deal_id} completed")


def _fits(page: Page, path: str) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(page.url.split("/console")[0] + path)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{path} at {width} px is {scroll} px wide"
        _screenshot(page, f"console{path.replace('/', '-').replace('?', '-')}-{width}.png")


def _screenshot(page: Page, name: str) -> None:
    """With DEALFLOW_SCREENSHOTS=folder, a full-page picture (to look at the layout)."""
    folder = os.environ.get("DEALFLOW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_every_page_fits_a_phone_and_the_filters_work(
        api_factory: Any, service: DealService, browser: Browser) -> None:
    api: Api = api_factory()
    _started(api, {**SMALL, "deal_id": "CO-W"}, "waiting_signature")
    _started(api, {**SMALL, "deal_id": "CO-D", "client": "Globex Corporation"}, "waiting_signature")
    _signed(api, "CO-D")
    _started(api, {**BIG, "deal_id": "CO-R"}, "waiting_review")
    page = _console(browser, api)
    for path in ("/console", "/console/deals/CO-W", "/console/deals/CO-D",
                 "/console/deals/CO-R", "/console/deals/CO-W/cancel", "/console/jobs",
                 "/console?status=completed"):
        _fits(page, path)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(api.base + "/console")
    expect(page.locator("tr[data-deal]")).to_have_count(3)
    expect(page.locator("tr[data-deal]").first).to_contain_text("CO-R")  # newest first
    page.get_by_label("Client").fill("globex")
    page.get_by_label("Client").press("Enter")  # the keyboard submits the filters
    expect(page.locator("tr[data-deal]")).to_have_count(1)
    expect(page.locator("tr[data-deal]")).to_contain_text("completed")
    page.goto(api.base + "/console?status=waiting_review")
    expect(page.locator("tr[data-deal]")).to_have_text(re.compile("CO-R"))
    page.goto(api.base + "/console?from=2000-01-01&to=2000-12-31")
    expect(page.get_by_text("No deal matches these filters.")).to_be_visible()
    page.goto(api.base + "/console?from=yesterday")
    expect(page.get_by_role("alert")).to_have_text(
        "from: a date as YYYY-MM-DD, got 'yesterday'")
    page.goto(api.base + "/console?failed=1")
    expect(page.locator("tr[data-deal]")).to_have_count(0)
    page.get_by_role("link", name="Clear the filters").focus()
    page.keyboard.press("Enter")
    page.get_by_role("link", name="CO-D").click()
    for heading in ("Facts", "Records per system", "Timeline", "Waits and deadlines",
                    "Audit trail", "Checkpoints"):
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(page.locator("section", has_text="Records per system")).to_contain_text("envelopes")
    expect(page.locator("table.checkpoints tbody tr").first).to_contain_text("completed")
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)  # ended


def test_an_operator_cancels_a_waiting_deal(
        api_factory: Any, service: DealService, browser: Browser) -> None:
    api: Api = api_factory()
    _started(api, {**SMALL, "deal_id": "CO-C"}, "waiting_signature")
    envelope = service.status("CO-C").context["envelope"]["envelope_id"]
    page = _console(browser, api, 390)
    page.get_by_role("link", name="CO-C").click()
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_role("heading", name="Cancel Acme GmbH · CO-C?")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"envelope {envelope}")
    confirm_url = page.url
    page.get_by_label("Reason").fill("the client chose another vendor")
    page.get_by_role("button", name="Yes, cancel the deal").click()
    expect(page.locator("#notice")).to_contain_text(f"deal CO-C cancelled (it was "
                                                    f"waiting_signature); voided {envelope}")
    expect(page.locator("#status")).to_have_text("cancelled")
    assert service.status("CO-C").status == "cancelled"
    assert [(e["envelope_id"], e["status"], e["void_reason"]) for e in
            service.records("CO-C")["envelopes"]] == [(envelope, "voided", "cancelled")]
    entry = next(e for e in service.audit("CO-C") if e.action == "console.cancel")
    assert (entry.actor, entry.reason) == ("ops-1", "the client chose another vendor")
    expect(page.locator("table.audit-trail")).to_contain_text(
        "the client chose another vendor")
    page.goto(confirm_url)  # a page left open: confirming again is refused in one line
    page.get_by_role("button", name="Yes, cancel the deal").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Refused: deal CO-C is cancelled: there is nothing to cancel")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_an_operator_forks_a_completed_deal_with_a_new_value(
        api_factory: Any, service: DealService, browser: Browser) -> None:
    api: Api = api_factory()
    _started(api, {**SMALL, "deal_id": "CO-F"}, "waiting_signature")
    _signed(api, "CO-F")
    after_qualify = next(c for c in service.history("CO-F")
                         if c["completed_steps"] == ["qualify_lead"]
                         and c["next"] == ["supervisor"])
    page = _console(browser, api)
    page.get_by_role("link", name="CO-F").click()
    page.get_by_label("From checkpoint").select_option(after_qualify["checkpoint_id"])
    page.get_by_label("Value (USD)").fill("15000.00")
    page.get_by_label("Comment (fork)").fill("re-priced after the call")
    page.get_by_role("button", name="Fork with these terms").click()
    expect(page.locator("#notice")).to_contain_text("with value 9000.00 → 15000.00")
    wait_until(lambda: api.status("CO-F") == "waiting_signature", 120, "the fork to run")
    report = service.status("CO-F")
    assert report.context["deal"]["value"] == "15000.00"
    current = [c for c in service.records("CO-F")["contracts"] if c["branch"] == "current"]
    assert len(current) == 1 and "15,000.00 USD" in current[0]["body"]
    fork = next(e for e in service.audit("CO-F") if e.action == "console.fork")
    assert (fork.actor, fork.reason) == ("ops-1", "re-priced after the call")
    assert fork.detail["from_checkpoint"] == after_qualify["checkpoint_id"]
    page.reload()
    expect(page.locator("#status")).to_have_text("waiting_signature")


def test_an_operator_retries_a_failed_job(
        api_factory: Any, service: DealService, browser: Browser, database_url: str) -> None:
    api: Api = api_factory()
    queue = build_queue(database_url)
    with queue.open():  # an event for a deal that does not exist yet: the job fails
        job = defer(queue, "event", thread_id_for("CO-J"), {"event": "signature.completed"})
        assert job is not None
        wait_until(lambda: queue.job_manager.list_jobs(id=job)[0].status == "failed", 120,
                   "the job to fail")
        _started(api, {**SMALL, "deal_id": "CO-J"}, "waiting_signature")
        page = _console(browser, api)
        _fits(page, "/console/jobs")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.get_by_role("link", name="Failed jobs").click()
        item = page.locator("li.job", has_text=f"Job {job}")
        expect(item).to_contain_text("dealflow.drive · event")
        expect(item.get_by_role("link", name="CO-J")).to_be_visible()
        item.get_by_role("button", name=f"Retry job {job}").click()
        expect(page.locator("#notice")).to_contain_text(f"job {job} (dealflow.drive) queued again")
        wait_until(lambda: api.status("CO-J") == "completed", 120, "the retried job")
        # the deal completes inside the job; the queue marks the job a moment later
        wait_until(lambda: queue.job_manager.list_jobs(id=job)[0].status == "succeeded", 60,
                   "the retried job to be marked succeeded")
        page.reload()
        expect(page.locator("li.job", has_text=f"Job {job}")).to_have_count(0)
        page.goto(api.base + "/console/jobs")
        retried = next(e for e in service.audit("CO-J") if e.action == "console.retry_job")
        assert retried.actor == "ops-1" and retried.detail["job_id"] == job


def test_every_field_shown_stays_text(
        api_factory: Any, service: DealService, browser: Browser, database_url: str) -> None:
    api: Api = api_factory()
    deal = {**SMALL, "deal_id": "CO-X", "client": XSS,
            "lead": {**SMALL["lead"], "notes": IMG, "contact_name": XSS}}
    _started(api, deal, "waiting_signature")
    row = service.deal("CO-X")
    service.data.audit.append(Origin("CO-X", agent="project", step="create_project",
                                     thread_id=row.thread_id), "step.failed", reason=IMG,
                              detail={"error": XSS})
    queue = build_queue(database_url)
    with queue.open():
        job = defer(queue, "event", thread_id_for("CO-NONE"), {"event": XSS})
        wait_until(lambda: queue.job_manager.list_jobs(id=job)[0].status == "failed", 120,
                   "the job to fail")
    page = _console(browser, api, 390)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(api.base + "/console?failed=1")
    expect(page.locator("tr[data-deal]")).to_contain_text(XSS)
    page.get_by_role("link", name="CO-X").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(XSS)
    expect(page.locator("table.audit-trail")).to_contain_text(IMG)  # the failure's error
    page.get_by_label("Payment terms (days)").fill(IMG)  # refused: the error quotes it
    page.get_by_label("Comment (fork)").fill(XSS)
    page.get_by_role("button", name="Fork with these terms").click()
    expect(page.get_by_role("alert")).to_contain_text(f"must be a whole number in plain "
                                                      f"digits, got '{IMG}")
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.get_by_label("Reason").fill(XSS)  # the comment, in the audit trail
    page.get_by_role("button", name="Yes, cancel the deal").click()
    expect(page.locator("table.audit-trail")).to_contain_text(XSS)
    expect(page.locator("dd.notes")).to_have_text(IMG)  # the lead's notes
    content = page.content()
    page.goto(api.base + "/console/jobs")
    expect(page.locator("li.job", has_text=f"Job {job}")).to_contain_text(XSS)
    for html in (content, page.content()):
        assert XSS not in html and IMG not in html  # only as &lt;script&gt; and &lt;img
    assert dialogs == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_forms_need_their_csrf_token_and_reviewers_are_kept_out(
        api_factory: Any, service: DealService, browser: Browser) -> None:
    api: Api = api_factory(workers=0)
    assert service.start(make_deal("CO-S")).status == "waiting_signature"
    client = httpx.Client(base_url=api.base, timeout=60)
    form = client.get("/console")
    assert "Token" in form.text and 'method="post"' in form.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    forged = client.post("/console/signin", data={"token": _token(api.operator),
                                                  "csrf": "forged"})
    assert forged.status_code == 403 and "sign in again" in forged.text
    fresh = re.search(r'name="csrf" value="([^"]+)"', forged.text)
    assert fresh is not None
    ok = client.post("/console/signin", data={"token": _token(api.operator),
                                              "csrf": fresh.group(1)})
    assert ok.status_code == 303 and "HttpOnly" in ok.headers["set-cookie"]
    assert "path=/console" in ok.headers["set-cookie"].lower()
    for path in ("/console", "/console/deals/CO-S", "/console/deals/CO-S/cancel",
                 "/console/jobs"):
        html = client.get(path).text
        posts = html.count('method="post"')
        assert posts >= 1 and html.count('name="csrf"') == posts, path  # one token each
        assert "http" not in html.split("<main")[0].replace('name="viewport"', "")
    for path in ("/console/deals/CO-S/cancel", "/console/deals/CO-S/retry",
                 "/console/deals/CO-S/recover", "/console/deals/CO-S/fork",
                 "/console/jobs/1/retry", "/console/deals/CO-S/cancel"):
        for data in ({}, {"csrf": "forged"}):
            refused = client.post(path, data=data)
            assert refused.status_code == 403, (path, data)
            assert "The form expired" in refused.text
    assert service.status("CO-S").status == "waiting_signature"  # nothing was done
    assert client.get("/console/static/console.css").status_code == 200
    signed_out = httpx.post(api.base + "/console/deals/CO-S/cancel", data={"csrf": "x"})
    assert signed_out.status_code == 401 and "Token" in signed_out.text

    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(api.base + "/console")
    _fits(page, "/console")  # the sign-in page
    page.goto(api.base + "/console")  # a reviewer's token: the sign-in says operators only
    page.get_by_label("Token").fill(_token(api.reviewer))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("The operations console is for "
                                                      "operators only")
    expect(page.get_by_role("heading", name="Deals", exact=True)).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(api.base + "/inbox")  # signed in to the inbox, a reviewer still cannot
    page.get_by_label("Token").fill(_token(api.reviewer))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Reviews waiting for a person")).to_be_visible()
    page.goto(api.base + "/console/deals/CO-S")
    expect(page.get_by_label("Token")).to_be_visible()
    reviewer = httpx.post(api.base + "/console/signin", cookies={"dealflow_signin": "t"},
                          data={"token": _token(api.reviewer), "csrf": "t"})
    assert reviewer.status_code == 403 and "operators only" in reviewer.text
