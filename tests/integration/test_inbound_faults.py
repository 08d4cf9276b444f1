"""A database error between the steps of an inbound command loses nothing and doubles nothing.

The API runs in this process (FastAPI's TestClient, the real app and queue on
the test's Postgres); the error is a real one: the step's own backend is
terminated (`pg_terminate_backend`), before the step writes or right after it
wrote (the answer lost on the way back). The provider's or reviewer's retry
must then be processed, not answered "duplicate", and a worker must finish the
deal exactly once; where the job itself was never queued, the sweep's relay
(`waits.unapplied`, then an `apply` job) finishes it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from procrastinate.exceptions import ConnectorException
from pydantic import SecretStr

from dealflow.api import DealService
from dealflow.errors import InvalidInput
from dealflow.service import inbound, webhooks
from dealflow.service.auth import create_token
from dealflow.service.jobs import build_queue, run_action
from dealflow.service.run import service_app
from state.config import Settings
from tests.helpers import make_deal
from tests.integration.fencing import performed_twice

SECRET = "whsec-inbound"


@pytest.fixture
def svc(settings: Settings) -> Iterator[DealService]:
    with DealService(settings.model_copy(update={"webhook_secret": SecretStr(SECRET)})) as service:
        yield service


@pytest.fixture
def client(svc: DealService) -> Iterator[TestClient]:
    with TestClient(service_app(svc, workers=0), raise_server_exceptions=False) as test_client:
        yield test_client


def terminate_own_backend(pool: Any) -> None:
    """Raise the error a database restart raises: this connection's backend is terminated."""
    with pool.connection() as conn:
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")


def fail_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, pool: Any, *,
              after: bool) -> list[int]:
    """Make `owner.name` fail once with a real database error, before or after it ran."""
    original, calls = getattr(owner, name), []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1 and not after:
            terminate_own_backend(pool)
        result = original(*args, **kwargs)
        if len(calls) == 1 and after:
            terminate_own_backend(pool)
        return result

    monkeypatch.setattr(owner, name, failing)
    return calls


def run_jobs(service: DealService) -> None:
    """Run every queued job to the end with a worker of this process, then stop."""
    queue = build_queue(str(service.settings.database_url))

    async def work() -> None:
        async with queue.open_async():
            await queue.run_worker_async(wait=False, install_signal_handlers=False,
                                         listen_notify=False,
                                         additional_context={"service": service})

    asyncio.run(work())


def sweep_relay(service: DealService) -> list[str]:
    """What the sweep does for a claimed wait whose job was never queued (without its delay)."""
    threads = service.data.waits.unapplied(0)
    for thread_id in threads:
        run_action(service, "apply", thread_id, {})
    return threads


def post_event(client: TestClient, event: dict[str, str]) -> Any:
    raw = json.dumps(event).encode()
    return client.post("/v1/webhooks/esign", content=raw,
                       headers={webhooks.SIGNATURE_HEADER: webhooks.sign(SECRET, raw)})


def waiting_for_signature(service: DealService, deal_id: str) -> dict[str, str]:
    report = service.start(make_deal(deal_id))
    assert report.status == "waiting_signature"
    assert report.pending is not None
    envelope = report.pending["envelope_id"]
    return {"event_id": f"evt-{deal_id}", "envelope_id": envelope,
            "event": "signature.completed"}


def invoices(service: DealService, deal_id: str) -> int:
    return len(service.records(deal_id)["invoices"])


STEPS: list[tuple[str, Callable[[], Any], str, bool]] = [
    ("claim fails", lambda: DealService, "claim_event", False),
    ("claim's answer lost", lambda: DealService, "claim_event", True),
    ("record fails", lambda: webhooks, "record_delivery", False),
]


@pytest.mark.parametrize(("case", "owner", "name", "after"), STEPS, ids=[s[0] for s in STEPS])
def test_a_webhook_retried_after_a_database_error_is_processed_once(
        svc: DealService, client: TestClient, monkeypatch: pytest.MonkeyPatch,
        case: str, owner: Callable[[], Any], name: str, after: bool) -> None:
    event = waiting_for_signature(svc, "WH-1")
    fail_once(monkeypatch, owner(), name, svc.pool, after=after)
    first = post_event(client, event)
    assert first.status_code == 503, first.text
    retry = post_event(client, event)
    assert retry.status_code == 202, (case, retry.text)  # processed, not "duplicate"
    assert post_event(client, event).json()["duplicate"] is True
    run_jobs(svc)
    assert svc.status("WH-1").status == "completed"
    assert invoices(svc, "WH-1") == 1 and performed_twice(svc.pool, "WH-1") == {}


def test_a_webhook_whose_record_answer_was_lost_is_finished_by_the_sweep(
        svc: DealService, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    event = waiting_for_signature(svc, "WH-2")
    fail_once(monkeypatch, webhooks, "record_delivery", svc.pool, after=True)
    assert post_event(client, event).status_code == 503
    assert post_event(client, event).json()["duplicate"] is True  # it was recorded
    run_jobs(svc)
    assert sweep_relay(svc) == [svc.status("WH-2").thread_id]
    assert svc.status("WH-2").status == "completed"
    assert invoices(svc, "WH-2") == 1 and performed_twice(svc.pool, "WH-2") == {}


def test_a_webhook_whose_job_could_not_be_queued_is_accepted_and_applied_by_the_sweep(
        svc: DealService, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    event = waiting_for_signature(svc, "WH-3")

    async def queue_down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectorException("could not connect to the queue's database")

    monkeypatch.setattr(inbound, "defer_async", queue_down)
    answer = post_event(client, event)
    assert answer.status_code == 202 and answer.json()["job_id"] is None
    assert "sweep" in answer.json()["note"]
    assert post_event(client, event).json()["duplicate"] is True
    assert sweep_relay(svc) == [svc.status("WH-3").thread_id]
    assert svc.status("WH-3").status == "completed" and invoices(svc, "WH-3") == 1


def test_a_reused_event_id_with_another_payload_is_refused(
        svc: DealService, client: TestClient) -> None:
    event = waiting_for_signature(svc, "WH-4")
    assert post_event(client, event).status_code == 202
    reused = post_event(client, {**event, "event": "signature.declined"})
    assert reused.status_code == 409 and "delivered before" in reused.json()["error"]
    run_jobs(svc)
    assert svc.status("WH-4").status == "completed"


def reviewer_headers(service: DealService) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(service.pool, 'rita', 'reviewer')}"}


@pytest.mark.parametrize("after", [False, True], ids=["claim fails", "claim's answer lost"])
def test_a_review_retried_after_a_database_error_is_applied_once(
        svc: DealService, client: TestClient, monkeypatch: pytest.MonkeyPatch,
        after: bool) -> None:
    assert svc.start(make_deal("RV-1", value="90000")).status == "waiting_review"
    headers = reviewer_headers(svc)
    fail_once(monkeypatch, DealService, "claim_review", svc.pool, after=after)
    body = {"decision": "approve", "comment": "ok"}
    assert client.post("/v1/deals/RV-1/review", json=body,
                       headers=headers).status_code == 503
    assert svc.status("RV-1").status == "waiting_review"
    retry = client.post("/v1/deals/RV-1/review", json=body, headers=headers)
    assert retry.status_code == 202, retry.text
    assert retry.json()["duplicate"] is after  # the lost answer had claimed it
    run_jobs(svc)
    if after:  # the claim's first request never queued its job: the sweep's relay does
        assert sweep_relay(svc) == [svc.status("RV-1").thread_id]
    assert svc.status("RV-1").status == "waiting_signature"
    decisions = [e for e in svc.audit("RV-1") if e.action == "review.decision"]
    assert len(decisions) == 1 and decisions[0].actor == "rita"
    assert not [e for e in svc.audit("RV-1") if e.action == "wait.refused"]


def test_a_review_whose_job_could_not_be_queued_is_accepted_not_a_500(
        svc: DealService, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    assert svc.start(make_deal("RV-2", value="90000")).status == "waiting_review"

    async def queue_down(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(inbound, "defer_async", queue_down)
    answer = client.post("/v1/deals/RV-2/review", json={"decision": "approve"},
                         headers=reviewer_headers(svc))
    assert answer.status_code == 202 and answer.json()["job_id"] is None, answer.text
    assert sweep_relay(svc) == [svc.status("RV-2").thread_id]
    assert svc.status("RV-2").status == "waiting_signature"


def test_the_supervisor_of_a_posted_deal_is_honoured_and_refused_without_a_model(
        svc: DealService, client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {create_token(svc.pool, 'ops', 'operator')}"}
    deal = make_deal("SUP-1").model_dump(mode="json")
    refused = client.post("/v1/deals", json={**deal, "supervisor": "llm"}, headers=headers)
    assert refused.status_code == 422 and "OPENAI_API_KEY" in refused.json()["error"], \
        refused.text
    assert client.get("/v1/deals/SUP-1", headers=headers).status_code == 404  # nothing kept
    row, _ = svc.register(make_deal("SUP-2"))
    with pytest.raises(InvalidInput):  # the start job runs the mode it was given
        run_action(svc, "start", row.thread_id,
                   {"deal": make_deal("SUP-2").model_dump(mode="json"), "supervisor": "llm"})


def test_an_mcp_review_retried_after_its_claims_answer_was_lost_is_applied_once(
        svc: DealService, monkeypatch: pytest.MonkeyPatch) -> None:
    import dealflow.api
    from dealflow.mcp_tools import DealTools

    assert svc.start(make_deal("MCP-1", value="90000")).status == "waiting_review"
    tools = DealTools(svc)
    thread_id = svc.status("MCP-1").thread_id
    fail_once(monkeypatch, dealflow.api, "claim_wait", svc.pool, after=True)
    with pytest.raises(psycopg.OperationalError):
        tools.submit_review(thread_id, "approve", "ok", caller="mia")
    answer = tools.submit_review(thread_id, "approve", "ok", caller="mia")
    assert answer["status"] == "waiting_signature"
    decisions = [e for e in svc.audit("MCP-1") if e.action == "review.decision"]
    assert len(decisions) == 1 and decisions[0].actor == "mia"
