"""The API's docs pages work with no internet: Swagger UI and ReDoc come from `dealflow serve`.

A real `dealflow serve` and Debian's Chromium (see test_inbox.py); every request
for another host is refused, as it would be offline, and a refusal of the
page's Content-Security-Policy is a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from dealflow.service import guards
from tests.integration.service_procs import Api
from tests.integration.test_inbox import browser  # noqa: F401  (the fixture)

WAIT_MS = 60_000


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[tuple[Page, list[str], list[str]]]:  # noqa: F811
    """A page that can reach 127.0.0.1 only; the other hosts it asked for; console errors."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    elsewhere: list[str] = []
    errors: list[str] = []

    def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", local_only)
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    yield page, elsewhere, errors
    page.close()


def test_swagger_ui_and_redoc_work_offline(api_factory: Any,
                                           offline_page: tuple[Page, list[str], list[str]]
                                           ) -> None:
    api: Api = api_factory(workers=0)
    page, elsewhere, errors = offline_page
    page.goto(api.base + "/docs")
    expect(page.locator(".opblock-summary-path[data-path='/v1/deals']").first).to_be_visible(
        timeout=WAIT_MS)
    expect(page.locator(".information-container .title")).to_contain_text("dealflow")
    page.goto(api.base + "/redoc")
    expect(page.get_by_role("heading", name="dealflow", exact=False).first).to_be_visible(
        timeout=WAIT_MS)
    expect(page.get_by_text("/v1/deals/{deal_id}/review").first).to_be_attached()
    assert elsewhere == []
    refused = [e for e in errors if "Content Security Policy" in e]
    # ReDoc's "API docs by Redocly" logo comes from its CDN whatever the options: the policy
    # refuses it (no request leaves), and ReDoc hides an image that did not load
    assert [e for e in refused if "cdn.redoc.ly/redoc/logo-mini.svg" not in e] == []
    for path in ("/docs", "/redoc"):
        answer = httpx.get(api.base + path, timeout=60)
        assert answer.headers["content-security-policy"] == guards.DOCS_POLICY
        assert answer.headers["x-frame-options"] == "DENY"
        assert "http" not in answer.headers["content-security-policy"]
        assert "cdn" not in answer.text
