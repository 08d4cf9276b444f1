"""`make screenshots`: the README's pictures of the inbox and the operations console.

Starts `dealflow serve` on a scratch database (TEST_DATABASE_URL's server, else
an embedded one; dropped after), runs a few deals (some completed, one waiting
for a review), signs in with an operator token and takes the pictures in
Debian's Chromium driven by Playwright: the inbox, a review, the console's deal
list and a deal's page at 1200 px, and the review and the console on a 390 px
phone. Usage: python -m docs.make_screenshots [FOLDER] (default docs/).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

from bench.common import throwaway_database
from dealflow.api import DealService
from dealflow.service.auth import create_token
from state.config import Settings
from state.models import DealInput

CHROMIUM = Path("/usr/bin/chromium")
LEAD = {"company_size": 300, "engagement": 80, "budget": "200000", "industry": "software",
        "contact_name": "Dana Signer", "contact_email": "dana@example.com"}
DONE = [("D-1041", "Acme GmbH", "9000"), ("D-1042", "Globex", "24500"),
        ("D-1043", "Umbrella Corp", "12800")]
BIG = ("D-1044", "Initech", "120000")


def _deals(service: DealService) -> None:
    """Three completed deals, then one over the threshold that waits for a person."""
    for deal_id, client, value in DONE:
        deal = DealInput.model_validate({"deal_id": deal_id, "client": client, "value": value,
                                         "lead": LEAD})
        service.start(deal)
        service.event(deal_id, "signature.completed")
    deal_id, client, value = BIG
    service.start(DealInput.model_validate({"deal_id": deal_id, "client": client,
                                            "value": value, "currency": "EUR", "lead": LEAD}))


def _serve(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """`dealflow serve` (API only) on a free port; its process and base URL once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exe = Path(sys.executable).parent / "dealflow"
    env = {**os.environ, "DATABASE_URL": url}
    proc = subprocess.Popen([str(exe), "serve", "--port", str(port), "--workers", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("make screenshots: dealflow serve did not answer in 120 s")


def _sign_in(page: Page, base: str, where: str, token: str) -> None:
    page.goto(f"{base}/{where}")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("networkidle")


def _pictures(base: str, token: str, folder: Path) -> list[Path]:
    """Take every picture; the paths written."""
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--no-sandbox"])
        for width, height, suffix in ((1200, 800, ""), (390, 844, "-phone")):
            page = browser.new_page(viewport={"width": width, "height": height})
            _sign_in(page, base, "inbox", token)
            expect(page.get_by_role("heading", name="Reviews waiting for a person")
                   ).to_be_visible()
            pictures = [("inbox", "/inbox"), ("review", f"/inbox/reviews/{BIG[0]}")]
            _sign_in(page, base, "console", token)
            pictures += [("console", "/console"), ("console-deal", f"/console/deals/{DONE[0][0]}")]
            for name, path in pictures:
                if suffix and name in ("inbox", "console-deal"):
                    continue  # the phone: the review and the deal list
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                shots.append(folder / f"{name}{suffix}.png")
                # the whole page, but a deal's (long) page and a phone's: the first screen
                page.screenshot(path=str(shots[-1]),
                                full_page=not suffix and name != "console-deal")
            page.close()
        browser.close()
    return shots


def main(folder: Path) -> int:
    """Make the pictures in `folder`; print each with its size."""
    if not CHROMIUM.exists():
        print("make screenshots: error: Debian's chromium is missing: apt-get install -y "
              "chromium", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    with throwaway_database() as url:
        with DealService(Settings(database_url=url)) as service:
            _deals(service)
            token = create_token(service.pool, "screenshots", "operator")
        proc, base = _serve(url)
        try:
            shots = _pictures(base, token, folder)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    for shot in shots:
        print(f"{shot}  {shot.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
