"""Rate limits shared by real processes (`dealflow worker`, `dealflow run`) against one HubSpot.

The local HubSpot (`tests.providers.hubspot`) logs when each request arrived;
`most_in_any(window)` is the most of them in any window of that length, sliding
over the log, which is what the provider's own limiter would count.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agents.systems.hubspot import HubSpotCRM
from agents.systems.rate_limits import RateLimit, RateLimiter
from dealflow.api import DealService, thread_id_for
from state.config import Settings
from tests.integration.fencing import wait_until
from tests.integration.service_procs import Api, log_tail, start_process, stop_process, webhook
from tests.providers.connect import with_hubspot
from tests.providers.hubspot import HubSpotServer

pytestmark = pytest.mark.scale  # make test-scale (minutes of worker processes)

UPSERT = "/crm/v3/objects/deals/batch/upsert"
DEAL = {"client": "Acme GmbH", "value": "9000",
        "lead": {"company_size": 300, "engagement": 80, "budget": "20000"}}
Workers = Callable[..., list[subprocess.Popen[str]]]


@pytest.fixture
def hubspot() -> Iterator[HubSpotServer]:
    """A local HubSpot with dealflow's deal properties; its log starts empty."""
    with HubSpotServer() as server:
        HubSpotCRM.from_settings(with_hubspot(Settings(), server)).setup()
        with server.lock:
            server.log.clear()
        yield server


@pytest.fixture
def workers(database_url: str) -> Iterator[Workers]:
    """Start `count` `dealflow worker` processes (stopped after the test)."""
    started: list[subprocess.Popen[str]] = []

    def start(count: int, concurrency: int, **env: str) -> list[subprocess.Popen[str]]:
        procs = [start_process(database_url, "worker", "--concurrency", str(concurrency), **env)
                 for _ in range(count)]
        started.extend(procs)
        return procs

    yield start
    for proc in started:
        stop_process(proc)


def on_hubspot(server: HubSpotServer, limits: str) -> dict[str, str]:
    """The environment of a process whose CRM is `server`, with `limits` declared."""
    return {"DEALFLOW_CRM": "hubspot", "DEALFLOW_HUBSPOT_TOKEN": server.token,
            "DEALFLOW_HUBSPOT_API_BASE": server.base_url, "DEALFLOW_RATE_LIMITS": limits,
            "DEALFLOW_PROVIDER_LAG_SECONDS": "0", "DEALFLOW_PROVIDER_TIMEOUT_SECONDS": "5"}


def statuses(service: DealService, deal_ids: list[str]) -> dict[str, str]:
    """The registry's status of each deal (not started: absent)."""
    return {row.deal_id: row.status for row in service.registry.list()
            if row.deal_id in deal_ids}


def wait_for(service: DealService, deal_ids: list[str], status: str, seconds: float,
             procs: list[subprocess.Popen[str]]) -> None:
    """Until every deal has `status`; on a timeout, say where they are and what workers said."""
    try:
        wait_until(lambda: set(statuses(service, deal_ids).values()) == {status}
                   and len(statuses(service, deal_ids)) == len(deal_ids), seconds, status)
    except AssertionError:
        tails = "\n".join(log_tail(proc, 1500) for proc in procs)
        raise AssertionError(f"{statuses(service, deal_ids)}\n{tails}") from None


def sign_all(api: Api, service: DealService, deal_ids: list[str]) -> None:
    """Deliver `signature.completed` for each deal's envelope, as the e-sign provider would."""
    for deal_id in deal_ids:
        pending = service.status(deal_id).pending or {}
        event = {"event_id": f"evt-{deal_id}", "envelope_id": pending["envelope_id"],
                 "event": "signature.completed"}
        assert webhook(api, event).status_code == 202


def upserts_of(server: HubSpotServer, deal_id: str) -> list[float]:
    """When the upserts of `deal_id` arrived."""
    return [r.at for r in server.requests("POST", UPSERT)
            if r.json["inputs"][0]["id"] == deal_id]


def test_no_window_of_the_provider_sees_more_than_the_limit_across_worker_processes(
        api_factory: Any, service: DealService, hubspot: HubSpotServer,
        workers: Workers) -> None:
    limit, window, count = 4, 4.0, 20  # waits up to 4 s: slept when short, else deferred
    env = on_hubspot(hubspot, f"hubspot={limit}/{window:g}s")
    api = api_factory(workers=0, **env)
    procs = workers(3, concurrency=2, **env)
    deal_ids = [f"RL-{n:02d}" for n in range(count)]
    started = time.monotonic()
    for deal_id in deal_ids:
        assert api.post("/v1/deals", {**DEAL, "deal_id": deal_id}).status_code == 202
    wait_for(service, deal_ids, "waiting_signature", 300, procs)
    sign_all(api, service, deal_ids)
    wait_for(service, deal_ids, "completed", 300, procs)
    took = time.monotonic() - started
    peak, sent = hubspot.most_in_any(window), len(hubspot.log)
    lookups = len(hubspot.requests("GET"))  # held back before its claim: nothing to ask
    print(f"\nrate limit hubspot={limit}/{window:g}s, 3 worker processes x 2, {count} deals: "
          f"most requests HubSpot saw in any {window:g} s window: {peak} (limit {limit}); "
          f"{sent} requests ({lookups} lookups) in {took:.1f} s")
    assert peak <= limit
    assert peak == limit  # reached: the workers were held back, not idle
    assert lookups == 0  # no slot spent asking: an effect is held back only before its claim
    assert all(len(hubspot.deals_with("dealflow_deal_id", d)) == 1 for d in deal_ids)
    assert hubspot.violations == []


def test_a_429_from_the_provider_pauses_every_process(
        api_factory: Any, service: DealService, hubspot: HubSpotServer, workers: Workers,
        database_url: str) -> None:
    pause = 10.0
    env = on_hubspot(hubspot, "hubspot=100/1s")  # generous: only the pause holds calls back
    api = api_factory(workers=0, **env)
    procs = workers(1, concurrency=1, **env)
    hubspot.fail("POST", UPSERT, "429", times=1, retry_after=f"{pause:g}")
    cli = start_process(database_url, "run", "--deal-id", "RL-A", "--client", "Acme GmbH",
                        "--value", "9000", **env)  # one process: the CLI gets the 429
    try:
        wait_until(lambda: any(status == 429 for _, status in hubspot.log), 120, "the 429")
        refused = next(r.at for r, status in hubspot.log if status == 429)
        # another process, a worker, takes a deal now: its call waits for the pause too
        assert api.post("/v1/deals", {**DEAL, "deal_id": "RL-B"}).status_code == 202
        # ... its job is held back before the CRM call's claim, continued after the pause
        wait_until(lambda: _deferred(service, "RL-B"), 60, "RL-B's job deferred")
        ready = time.monotonic()
        assert cli.wait(timeout=120) == 0, log_tail(cli)
    finally:
        stop_process(cli)
    wait_for(service, ["RL-A", "RL-B"], "waiting_signature", 120, procs)
    assert ready < refused + pause, "RL-B's job was not held back during the pause"
    later = [r.at for r, _ in hubspot.log if r.at > refused]
    print(f"\na 429 with Retry-After: {pause:g}: the next request of any process came "
          f"{min(later) - refused:.2f} s later ({len(later)} requests after it)")
    assert later and min(later) >= refused + pause - 0.05
    assert upserts_of(hubspot, "RL-A") and upserts_of(hubspot, "RL-B")


def test_a_rate_limited_job_is_deferred_and_its_worker_serves_another_deal_meanwhile(
        api_factory: Any, service: DealService, hubspot: HubSpotServer,
        workers: Workers) -> None:
    limit = RateLimit(1, 8.0)
    env = on_hubspot(hubspot, f"hubspot={limit}")
    api = api_factory(workers=0, **env)
    procs = workers(1, concurrency=1, **env)  # one worker thread in all
    assert api.post("/v1/deals", {**DEAL, "deal_id": "RL-A"}).status_code == 202
    wait_for(service, ["RL-A"], "waiting_signature", 120, procs)
    # the provider's one slot, taken from here: the window is full for the next 8 s
    limiter = RateLimiter(service.pool, "hubspot", limit, stale=30)
    slot, _ = limiter.take(30.0, time.sleep)
    limiter.release(slot)
    assert api.post("/v1/deals", {**DEAL, "deal_id": "RL-B"}).status_code == 202
    wait_until(lambda: _deferred(service, "RL-B"), 60, "RL-B's job deferred")
    sign_all(api, service, ["RL-A"])  # the only worker thread is free: RL-A goes on
    wait_for(service, ["RL-A"], "completed", 60, procs)
    assert upserts_of(hubspot, "RL-B") == [], "RL-B called HubSpot before RL-A completed"
    assert statuses(service, ["RL-B"]) == {"RL-B": "running"}
    wait_for(service, ["RL-B"], "waiting_signature", 120, procs)
    sign_all(api, service, ["RL-B"])
    wait_for(service, ["RL-B"], "completed", 60, procs)
    steps = [e.action for e in service.audit("RL-B")]
    assert "step.failed" not in steps  # waited, never failed nor retried in the process
    assert len(upserts_of(hubspot, "RL-B")) == 1
    spans = service.trace("RL-B")[1]
    held = [s for s in spans if s.node == "qualify_lead" and s.status != "ok"]
    assert held and {s.status for s in held} == {"deferred"}, [(s.status, s.error) for s in held]


def _deferred(service: DealService, deal_id: str) -> bool:
    """Whether a `continue` of the deal's thread is queued for later (a deferred job)."""
    with service.pool.connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM procrastinate_jobs WHERE status = 'todo'"
            " AND args->>'action' = 'continue' AND args->>'thread_id' = %s"
            " AND scheduled_at > now()", (thread_id_for(deal_id),)).fetchone()
    return row is not None and row["n"] > 0
