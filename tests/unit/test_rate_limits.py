"""Rate limits without a database: the declaration, the client's use of a limiter, deferral."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from agents.step_run import StepRun
from agents.systems.base import Systems, SystemUnavailable
from agents.systems.http import ProviderClient
from agents.systems.providers import rate_limits
from agents.systems.rate_limits import (
    RateLimit,
    RateLimited,
    parse_rate_limits,
)
from dealflow.service.rate_deferral import JITTER, run_deferring
from graph.runtime import DealContext
from state.audit import Origin
from state.config import ConfigError, Settings

KNOWN = ("asana", "docusign", "hubspot", "stripe")


def test_the_declared_limits_are_calls_per_window() -> None:
    assert parse_rate_limits("hubspot=100/10s, docusign=3000/h,stripe=25/s", KNOWN) == {
        "hubspot": RateLimit(100, 10.0), "docusign": RateLimit(3000, 3600.0),
        "stripe": RateLimit(25, 1.0)}
    assert parse_rate_limits(" asana = 150 / 1m ,", KNOWN) == {"asana": RateLimit(150, 60.0)}
    assert parse_rate_limits(None, KNOWN) == parse_rate_limits("", KNOWN) == {}
    assert str(RateLimit(3000, 3600.0)) == "3000/1h" and str(RateLimit(5, 2.5)) == "5/2.5s"


@pytest.mark.parametrize(("raw", "message"), [
    ("hubspot=100", "DEALFLOW_RATE_LIMITS: expected provider=calls/window (e.g. "
                    "hubspot=100/10s, docusign=3000/h), got 'hubspot=100'"),
    ("hubspot:100/10s", "expected provider=calls/window"),
    ("hubspot=100/10x", "expected provider=calls/window"),
    ("hubspot=-1/s", "expected provider=calls/window"),
    ("hubsopt=5/s", "DEALFLOW_RATE_LIMITS: unknown provider 'hubsopt' (known: asana, "
                    "docusign, hubspot, stripe)"),
    ("hubspot=0/s", "DEALFLOW_RATE_LIMITS: 'hubspot=0/s': a limit is at least one call in a "
                    "window longer than 0 s"),
    ("hubspot=5/0s", "at least one call in a window longer than 0 s"),
    ("stripe=5/s,stripe=6/s", "DEALFLOW_RATE_LIMITS: stripe is given two limits"),
    ("stripe=5/99999999d", "DEALFLOW_RATE_LIMITS: stripe: duration must be at most"),
])
def test_a_bad_declaration_is_one_line_naming_the_variable(raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rate_limits(raw, KNOWN)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_setting_is_read_from_the_environment_and_checked_where_providers_are_known(
) -> None:
    settings = Settings.from_env({"DEALFLOW_RATE_LIMITS": "stripe=25/s"})
    assert rate_limits(settings) == {"stripe": RateLimit(25, 1.0)}
    assert Settings().rate_limits is None and rate_limits(Settings()) == {}
    with pytest.raises(ConfigError, match=r"^DEALFLOW_RATE_LIMITS: unknown provider 'sandbox'"):
        rate_limits(Settings(rate_limits="sandbox=1/s"))


class FakeLimiter:
    """Records what the client asks of a limiter; `waits` are the waits `take` reports."""

    def __init__(self, waits: list[float] | None = None) -> None:
        self.waits = list(waits or [])
        self.calls: list[Any] = []
        self.next_slot = 0

    def take(self, budget: float, sleep: Any) -> tuple[int, float]:
        wait = self.waits.pop(0) if self.waits else 0.0
        if wait > budget:
            raise RateLimited("hubspot", wait)
        self.next_slot += 1
        self.calls.append(("take", self.next_slot))
        return self.next_slot, wait

    def release(self, slot: int) -> None:
        self.calls.append(("release", slot))

    def pause(self, seconds: float) -> None:
        self.calls.append(("pause", seconds))


def _client(limiter: FakeLimiter, answers: list[httpx.Response],
            slept: list[float]) -> ProviderClient:
    def handle(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if answer.status_code == 599:
            raise httpx.ReadTimeout("slow", request=request)
        return answer

    return ProviderClient("crm", "http://provider.test", {}, timeout=1, retries=2, max_wait=5,
                          transport=httpx.MockTransport(handle), sleep=slept.append,
                          limiter=limiter)  # type: ignore[arg-type]


def test_every_request_takes_a_slot_and_releases_it_and_a_429_pauses_the_provider() -> None:
    limiter, slept = FakeLimiter(), []
    client = _client(limiter, [httpx.Response(429, headers={"Retry-After": "3"}),
                               httpx.Response(599), httpx.Response(200, json={})], slept)
    assert client.send("GET", "/x", repeatable=True).status_code == 200
    assert limiter.calls == [("take", 1), ("release", 1), ("pause", 3.0), ("take", 2),
                             ("release", 2), ("take", 3), ("release", 3)]
    assert len(slept) == 1  # the backoff after the lost answer; the 429's wait is the slot's


def test_a_wait_past_the_calls_budget_is_the_provider_unavailable() -> None:
    slept: list[float] = []
    client = _client(FakeLimiter([2.0]), [httpx.Response(200, json={})], slept)
    assert client.send("GET", "/x", repeatable=True).status_code == 200  # within max_wait
    with pytest.raises(SystemUnavailable, match=r"^crm: GET /x: hubspot: rate limit reached, "
                       r"next slot in 30.0 s, after waiting 0 s$"):
        _client(FakeLimiter([30.0]), [], []).send("GET", "/x", repeatable=True)


def test_a_rate_limited_job_queues_its_continuation_after_the_wait() -> None:
    queued: list[float] = []

    def limited() -> str:
        raise RateLimited("hubspot", 4.0)

    note = run_deferring(limited, lambda seconds: queued.append(seconds) or 7)
    assert len(queued) == 1 and 4.0 <= queued[0] <= 4.0 * (1 + JITTER)
    assert note.startswith("rate limited (hubspot: rate limit reached, next slot in 4.0 s)")
    assert run_deferring(lambda: "completed", queued.append) == "completed"
    assert len(queued) == 1


class HoldingLimiter:
    """A limiter whose forecast is `wait` seconds (it holds back as `RateLimiter` does)."""

    def __init__(self, wait: float) -> None:
        self.wait = wait

    def hold_back(self) -> None:
        if self.wait > 1.0:
            raise RateLimited("hubspot", self.wait)


class Ledger:
    """The effect ledger's `perform`, counting claims."""

    def __init__(self) -> None:
        self.claims = 0

    def perform(self, origin: Any, name: str, request: Any, model: Any, call: Any,
                lookup: Any, work: Any) -> tuple[Any, str]:
        self.claims += 1
        return call("key"), "key"


@pytest.mark.parametrize(("wait", "claims"), [(30.0, 0), (0.5, 1)])
def test_a_step_in_a_job_is_held_back_before_its_claim_only_for_a_long_wait(
        wait: float, claims: int) -> None:
    ledger = Ledger()
    run = StepRun(origin=Origin("D-1", agent="lead", step="qualify_lead", thread_id="t"),
                  data=SimpleNamespace(effects=ledger),  # type: ignore[arg-type]
                  settings=Settings(), rate_limit=HoldingLimiter(wait))  # type: ignore[arg-type]
    if claims == 0:
        with pytest.raises(RateLimited):
            run.effect("crm.record", Receipt, {}, lambda key: Receipt(key=key), None)
    else:
        assert run.effect("crm.record", Receipt, {}, lambda key: Receipt(key=key), None).key
    assert ledger.claims == claims  # held back: nothing claimed, nothing sent


def test_only_a_worker_jobs_context_holds_effects_back() -> None:
    limiter = HoldingLimiter(30.0)
    systems = Systems({}, {"crm": limiter})  # type: ignore[dict-item]
    context = DealContext(settings=Settings(), systems=systems,
                          data=None)  # type: ignore[arg-type]
    assert context.rate_limit_of("crm") is None  # the CLI, a notebook: waits are slept
    job = dataclasses.replace(context, defer_rate_limits=True)
    assert job.rate_limit_of("crm") is limiter and job.rate_limit_of("pm") is None
    assert job.rate_limit_of(None) is None


class Receipt(BaseModel):
    """A receipt."""

    key: str
