"""The service with real processes: `dealflow serve` and `dealflow worker` driven over HTTP.

Everything runs on the test's Postgres; the e-sign provider is this test, which
signs its webhooks with the shared secret.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from dealflow.api import DealService, thread_id_for
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal
from tests.integration.fencing import sandbox_rows, wait_until
from tests.integration.service_procs import start_process, stop_process, webhook

DEAL = {"deal_id": "SV-1", "client": "Acme GmbH", "value": "9000",
        "lead": {"company_size": 300, "engagement": 80, "budget": "20000"}}


def test_a_deal_from_post_to_completed_through_a_signed_webhook(
        api_factory: Any, service: DealService, database_url: str) -> None:
    api = api_factory()
    created = api.post("/v1/deals", DEAL)
    assert created.status_code == 202, created.text
    assert created.json()["thread_id"] == thread_id_for("SV-1")
    assert api.post("/v1/deals", DEAL).status_code == 200  # same terms: same thread
    other = api.post("/v1/deals", {**DEAL, "value": "9001"})
    assert other.status_code == 409 and "different terms" in other.json()["error"]
    wait_until(lambda: api.status("SV-1") == "waiting_signature", 120, "the signature wait")
    report = api.get("/v1/deals/SV-1").json()
    cli = json.loads(run_cli(["status", "SV-1", "--json"], cli_env(database_url)).stdout)
    assert report == cli  # exactly the CLI's status JSON
    envelope = report["pending"]["envelope_id"]
    event = {"event_id": "evt-1", "envelope_id": envelope, "event": "signature.completed"}
    assert webhook(api, event, secret="wrong").status_code == 401
    assert api.status("SV-1") == "waiting_signature"
    assert webhook(api, {**event, "envelope_id": "ENV-404"}).status_code == 404
    assert webhook(api, event).status_code == 202
    wait_until(lambda: api.status("SV-1") == "completed", 120, "completion")
    assert sandbox_rows(service.pool, "SV-1") == {"projects": 1, "contracts": 1,
                                                   "envelopes": 1}
    for view in ("records", "audit", "trace", "history"):
        assert api.get(f"/v1/deals/SV-1/{view}").status_code == 200, view
    listed = api.get("/v1/deals?status=completed").json()
    assert [d["deal_id"] for d in listed["deals"]] == ["SV-1"]
    # the CLI and the service share the deals
    assert "SV-1" in run_cli(["threads"], cli_env(database_url)).stdout
    service.start(make_deal("CLI-1"))  # started from Python/the CLI, read over HTTP
    assert api.status("CLI-1") == "waiting_signature"
    metrics = httpx.get(api.base + "/metrics", timeout=30).text
    assert 'dealflow_deals{status="completed"} 1.0' in metrics
    assert 'dealflow_webhook_deliveries{event="signature.completed"} 1.0' in metrics


def test_a_review_from_the_api_goes_into_the_audit_with_the_reviewers_name(
        api_factory: Any, service: DealService) -> None:
    api = api_factory()
    big = {**DEAL, "deal_id": "SV-BIG", "value": "90000",
           "lead": {"company_size": 300, "engagement": 80, "budget": "200000"}}
    assert api.post("/v1/deals", big).status_code == 202
    wait_until(lambda: api.status("SV-BIG") == "waiting_review", 120, "the review")
    malformed = api.post("/v1/deals/SV-BIG/review", {"decision": "maybe"}, api.reviewer)
    assert malformed.status_code == 422 and "decision" in malformed.json()["error"]
    wrong_kind = api.post("/v1/deals/SV-BIG/review", {"decision": "retry"}, api.reviewer)
    assert wrong_kind.status_code == 422
    ok = api.post("/v1/deals/SV-BIG/review", {"decision": "approve", "comment": "fine"},
                  api.reviewer)
    assert ok.status_code == 202, ok.text
    wait_until(lambda: api.status("SV-BIG") == "waiting_signature", 120, "the approval")
    again = api.post("/v1/deals/SV-BIG/review", {"decision": "approve"}, api.reviewer)
    assert again.status_code == 409
    decision = next(e for e in service.audit("SV-BIG") if e.action == "review.decision")
    assert decision.actor == "rita-1" and decision.reason == "fine"


def test_auth_roles_and_malformed_bodies(api_factory: Any) -> None:
    api = api_factory(workers=0)
    assert api.post("/v1/deals", DEAL, headers={}).status_code == 401
    assert api.post("/v1/deals", DEAL, {"Authorization": "Bearer nope"}).status_code == 401
    forbidden = api.post("/v1/deals", DEAL, api.reviewer)
    assert forbidden.status_code == 403 and "operator role" in forbidden.json()["error"]
    bad = api.post("/v1/deals", {**DEAL, "value": "-5"})
    assert bad.status_code == 422 and bad.json()["error"].startswith("value:")
    assert api.get("/v1/deals").json() == {"deals": [], "next_cursor": None}  # nothing written
    broken = httpx.post(api.base + "/v1/deals", content=b"{not json", timeout=30,
                        headers={**api.operator, "Content-Type": "application/json"})
    assert broken.status_code == 422 and set(broken.json()) == {"error"}
    assert api.get("/v1/deals/NOPE").status_code == 404
    assert webhook(api, {"event_id": "x"}).status_code == 422
    assert api.get("/openapi.json", headers={}).json()["paths"]["/v1/deals"]


def test_twenty_concurrent_deliveries_of_one_webhook_are_one_event(
        api_factory: Any, service: DealService) -> None:
    api = api_factory()
    assert api.post("/v1/deals", {**DEAL, "deal_id": "SV-STORM"}).status_code == 202
    wait_until(lambda: api.status("SV-STORM") == "waiting_signature", 120, "the wait")
    envelope = api.get("/v1/deals/SV-STORM").json()["pending"]["envelope_id"]
    event = {"event_id": "evt-storm", "envelope_id": envelope, "event": "signature.completed"}
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda _: webhook(api, event).status_code, range(20)))
    assert sorted(set(codes)) == [200, 202] and codes.count(202) == 1
    wait_until(lambda: api.status("SV-STORM") == "completed", 120, "completion")
    with service.pool.connection() as conn:
        jobs = conn.execute("SELECT count(*) AS n FROM procrastinate_jobs WHERE"
                            " args->>'action' = 'event'").fetchone()
    assert jobs is not None and jobs["n"] == 1
    signed = [e for e in service.audit("SV-STORM") if e.key == "SV-STORM.signature"]
    assert len(signed) == 1


def test_a_worker_killed_mid_step_is_replaced_without_a_duplicate(
        api_factory: Any, service: DealService, database_url: str) -> None:
    api = api_factory(workers=0)  # an API-only node; the workers are separate processes
    slow = {"DEALFLOW_SANDBOX_LATENCY_MS": "1500", "DEALFLOW_WORKER_STALLED_SECONDS": "6"}
    doomed = start_process(database_url, "worker", "--concurrency", "1", **slow)
    try:
        assert api.post("/v1/deals", {**DEAL, "deal_id": "SV-KILL"}).status_code == 202
        wait_until(lambda: _claimed(service, "SV-KILL"), 120, "a step mid-call")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=30)
        killed_at = time.monotonic()
        survivor = start_process(database_url, "worker", "--concurrency", "1", **slow)
        try:
            wait_until(lambda: api.status("SV-KILL") == "waiting_signature", 180,
                       "the survivor to finish the deal")
            took = time.monotonic() - killed_at
        finally:
            stop_process(survivor)
    finally:
        stop_process(doomed)
    assert sandbox_rows(service.pool, "SV-KILL") == {"projects": 1, "contracts": 1,
                                                      "envelopes": 1}
    performed = [e for e in service.audit("SV-KILL") if e.action == "effect.performed"]
    assert len({e.detail["key"] for e in performed}) == len(performed)
    print(f"worker killed mid-step: the deal reached its wait {took:.1f}s later")
    assert took < 120, took  # bound: stalled limit 6 s + sweep 5 s + the remaining steps


def _claimed(service: DealService, deal_id: str) -> bool:
    with service.pool.connection() as conn:
        return conn.execute("SELECT 1 FROM dealflow_effects WHERE deal_id = %s AND"
                            " status = 'claimed' AND step <> 'qualify_lead'",
                            (deal_id,)).fetchone() is not None


FUZZER = Path(__file__).resolve().parents[2] / ".venv-fuzz" / "bin" / "schemathesis"


def test_a_fuzz_of_the_openapi_document_finds_no_server_error(api_factory: Any,
                                                              tmp_path: Path) -> None:
    """Schemathesis (its own venv, `make install`) against the live OpenAPI document."""
    assert FUZZER.exists(), "run make install: it creates .venv-fuzz with schemathesis"
    api = api_factory(workers=0)
    token = api.operator["Authorization"]
    done = subprocess.run(
        [str(FUZZER), "run", f"{api.base}/openapi.json", "--checks", "not_a_server_error",
         "--header", f"Authorization: {token}", "--max-examples", "25", "--seed", "7",
         "--no-color"], capture_output=True, text=True, timeout=900, check=False,
        cwd=tmp_path)  # its cache stays out of the checkout
    lines = done.stdout.strip().splitlines() or [done.stderr]
    summary = next((line for line in lines if "generated" in line), lines[-1])
    print(f"schemathesis: {summary.strip()}")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "passed" in done.stdout and "failed" not in summary
