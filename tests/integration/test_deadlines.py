"""Deadlines on every wait, fired by the service's workers as real processes.

Second-scale deadlines (`DEALFLOW_*_AFTER=2s`) on the test's Postgres; the
notification receiver is a local HTTP server; the deals are started over the
API or from Python, and read back from Postgres as a user would.
"""

from __future__ import annotations

import json
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from langgraph.types import Command

from dealflow.api import DealService, thread_id_for
from state.audit import Origin
from state.config import Settings
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal
from tests.integration.fencing import sandbox_rows, wait_until
from tests.integration.service_procs import (
    Api,
    Receiver,
    start_process,
    stop_process,
    webhook,
)

BIG = {"client": "Initech", "value": "80000",
       "lead": {"company_size": 300, "engagement": 80, "budget": "200000"}}
SMALL = {"client": "Acme GmbH", "value": "9000",
         "lead": {"company_size": 300, "engagement": 80, "budget": "20000"}}
OFF = {f"DEALFLOW_{wait}_{action}_AFTER": "off" for wait, action in (
    ("REVIEW", "REMIND"), ("REVIEW", "ESCALATE"), ("REVIEW", "EXPIRE"),
    ("SIGNATURE", "REMIND"), ("SIGNATURE", "EXPIRE"))}


def _fired(service: DealService, deal_id: str) -> list[str]:
    return [e.detail["deadline"] for e in service.audit(deal_id) if e.action == "deadline.fired"]


def _deadlines(service: DealService, deal_id: str) -> dict[str, str]:
    thread = service.deal(deal_id).thread_id
    return {d.name: d.status for d in service.data.deadlines.for_thread(thread)}


def test_an_unanswered_review_is_reminded_escalated_and_expires(
        api_factory: Any, service: DealService, database_url: str) -> None:
    with Receiver() as receiver:
        api: Api = api_factory(**OFF | {
            "DEALFLOW_REVIEW_REMIND_AFTER": "2s", "DEALFLOW_REVIEW_ESCALATE_AFTER": "4s",
            "DEALFLOW_REVIEW_EXPIRE_AFTER": "6s", "DEALFLOW_NOTIFY_URL": receiver.url,
            "DEALFLOW_ESCALATION_CONTACT": "vp-sales@example.com"})
        assert api.post("/v1/deals", {**BIG, "deal_id": "DL-R"}).status_code == 202
        wait_until(lambda: api.status("DL-R") == "waiting_review", 120, "the review")
        report = api.get("/v1/deals/DL-R").json()
        assert [d["name"] for d in report["deadlines"]] == [
            "review.remind", "review.escalate", "review.expire"]
        assert report["deadlines"][2]["then"].startswith("end the deal as expired")
        wait_until(lambda: api.status("DL-R") == "expired", 120, "the expiry")
        wait_until(lambda: len(receiver.taken()) >= 4, 60, "four notifications")
    assert sorted(_fired(service, "DL-R")) == ["review.escalate", "review.expire",
                                               "review.remind"]  # each exactly once
    assert _deadlines(service, "DL-R") == dict.fromkeys(
        ("review.remind", "review.escalate", "review.expire"), "fired")
    escalation = next(e for e in service.audit("DL-R") if e.action == "deadline.fired"
                      and e.detail["deadline"] == "review.escalate")
    assert escalation.actor == "deadline:review.escalate"
    events = [m["event"] for m in receiver.taken()]
    assert events == ["review.requested", "review.reminder", "review.escalated",
                      "review.expired"]
    escalated = receiver.taken()[2]
    assert escalated["to"] == "vp-sales@example.com" and escalated["deal_id"] == "DL-R"
    metrics = api.get("/metrics").text
    assert 'dealflow_deadlines{state="fired"} 3.0' in metrics
    assert 'dealflow_notifications{state="sent"} 4.0' in metrics
    assert set(escalated) >= {"id", "text", "event", "deal_id", "thread_id", "due_at"}
    assert sandbox_rows(service.pool, "DL-R") == {"projects": 0, "contracts": 0,
                                                   "envelopes": 0}  # nothing past qualifying
    late = api.post("/v1/deals/DL-R/review", {"decision": "approve"}, api.reviewer)
    assert late.status_code == 409 and "the review expired at" in late.json()["error"]
    cli = run_cli(["resume", "DL-R", "--decision", "approve"], cli_env(database_url))
    assert cli.returncode == 4 and "the review expired at" in cli.stderr
    trace = run_cli(["trace", "DL-R"], cli_env(database_url)).stdout
    assert "⏱ review.remind after 2s: fired" in trace
    assert "⏱ review.expire after 6s: fired" in trace
    print("\n" + trace)


def test_an_unsigned_envelope_is_reminded_once_then_voided(
        api_factory: Any, service: DealService) -> None:
    api: Api = api_factory(**OFF | {"DEALFLOW_SIGNATURE_REMIND_AFTER": "2s",
                                    "DEALFLOW_SIGNATURE_EXPIRE_AFTER": "5s"})
    assert api.post("/v1/deals", {**SMALL, "deal_id": "DL-S"}).status_code == 202
    wait_until(lambda: api.status("DL-S") == "waiting_signature", 120, "the signature wait")
    envelope = api.get("/v1/deals/DL-S").json()["pending"]["envelope_id"]
    wait_until(lambda: api.status("DL-S") == "expired", 120, "the expiry")
    records = service.records("DL-S")["envelopes"]
    assert [(r["envelope_id"], r["status"], r["void_reason"]) for r in records] == [
        (envelope, "voided", "expired")]
    assert len(records[0]["reminders"]) == 1  # one reminder for one deadline
    assert sorted(_fired(service, "DL-S")) == ["signature.expire", "signature.remind"]
    assert sandbox_rows(service.pool, "DL-S")["envelopes"] == 1
    assert service.data.effects.effects("DL-S")[-1]["effect"] == "esign.void_envelope"
    signed = webhook(api, {"event_id": "evt-late", "envelope_id": envelope,
                           "event": "signature.completed"})
    assert signed.status_code == 409 and "expired at" in signed.json()["error"]
    refused = [e for e in service.audit("DL-S") if e.action == "wait.refused"]
    assert [e.detail["refused"] for e in refused] == [{"event": "signature.completed"}]
    assert api.status("DL-S") == "expired"


def test_fifty_decisions_racing_their_expiry_have_one_winner_each(
        api_factory: Any, settings: Settings) -> None:
    """Each decision is posted around its review's expiry; whichever claims first wins."""
    api: Api = api_factory(**OFF)
    expire = 12.0
    racing = settings.model_copy(update={"review_expire_after": _seconds(expire),
                                         "review_remind_after": None,
                                         "review_escalate_after": None})
    with DealService(racing) as starter:
        for n in range(50):
            starter.start(make_deal(f"RACE-{n}", "80000.00"))
        due = {f"RACE-{n}": _expiry_of(starter, f"RACE-{n}") for n in range(50)}
        rng = random.Random(13)
        plan = sorted((when.timestamp() + rng.uniform(-1.0, 1.5), deal)
                      for deal, when in due.items())

        def decide(entry: tuple[float, str]) -> tuple[str, int, str]:
            at, deal = entry
            time.sleep(max(0.0, at - time.time()))
            answer = api.post(f"/v1/deals/{deal}/review", {"decision": "approve",
                                                            "comment": "racing"}, api.reviewer)
            return deal, answer.status_code, answer.text

        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(decide, plan))
        wait_until(lambda: all(api.status(d) in ("expired", "waiting_signature")
                               for d in due), 180, "every race to settle")
        outcomes = {"approved": 0, "expired": 0}
        for deal, code, text in answers:
            status = api.status(deal)
            entries = starter.audit(deal)
            decided = [e for e in entries if e.action == "review.decision"]
            assert len(decided) == 1, (deal, code, text)  # one decision took effect
            fired = _fired(starter, deal)
            if code == 202:
                assert status == "waiting_signature" and decided[0].detail["decision"] \
                    == "approve" and fired == [], (deal, status, fired)
                assert _deadlines(starter, deal)["review.expire"] == "cancelled"
                outcomes["approved"] += 1
            else:
                assert code == 409 and "the review expired at" in text, (deal, code, text)
                assert status == "expired" and fired == ["review.expire"], (deal, fired)
                assert decided[0].detail["decision"] == "expire"
                refused = [e for e in entries if e.action == "wait.refused"]
                assert [e.detail["refused"]["decision"] for e in refused] == ["approve"]
                outcomes["expired"] += 1
    print(f"\n50 races of a decision and its expiry: {outcomes['approved']} decisions won, "
          f"{outcomes['expired']} expiries won, 0 with two winners")
    assert outcomes["approved"] + outcomes["expired"] == 50


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


def _expiry_of(service: DealService, deal_id: str) -> datetime:
    thread = service.deal(deal_id).thread_id
    return next(d.due_at for d in service.data.deadlines.for_thread(thread)
                if d.name == "review.expire")


def test_a_worker_killed_while_firing_a_deadline_is_replaced_and_it_fires_once(
        api_factory: Any, service: DealService, database_url: str) -> None:
    timing = OFF | {"DEALFLOW_SIGNATURE_REMIND_AFTER": "2s",
                    "DEALFLOW_WORKER_STALLED_SECONDS": "4"}
    api: Api = api_factory(workers=0, **timing)
    doomed = start_process(database_url, "worker", "--concurrency", "1", **timing,
                           DEALFLOW_CRASH_AT="signature.remind:after_effect")
    try:
        assert api.post("/v1/deals", {**SMALL, "deal_id": "DL-K"}).status_code == 202
        doomed.wait(timeout=180)  # it kills itself after the reminder, before the receipt
        assert doomed.returncode == -signal.SIGKILL
        assert _deadlines(service, "DL-K")["signature.remind"] == "scheduled"
        survivor = start_process(database_url, "worker", "--concurrency", "1", **timing)
        try:
            wait_until(lambda: _deadlines(service, "DL-K")["signature.remind"] == "fired", 120,
                       "the survivor to fire the reminder")
        finally:
            stop_process(survivor)
    finally:
        stop_process(doomed)
    envelope = service.records("DL-K")["envelopes"][0]
    assert len(envelope["reminders"]) == 1  # sent once, by the worker that died
    assert _fired(service, "DL-K") == ["signature.remind"]
    how = [e.action for e in service.audit("DL-K") if e.detail.get("effect")
           == "esign.remind_signer"]
    assert how == ["effect.reconciled"]  # the survivor asked e-sign instead of sending again


def test_notifications_are_retried_until_the_receiver_takes_them(
        api_factory: Any, service: DealService) -> None:
    with Receiver(fail_first=2) as receiver:
        api: Api = api_factory(**OFF | {"DEALFLOW_NOTIFY_URL": receiver.url})
        assert api.post("/v1/deals", {**BIG, "deal_id": "DL-N"}).status_code == 202
        wait_until(lambda: receiver.taken(), 120, "a delivered notification")
        posts = list(receiver.posts)
    assert [code for code, _ in posts[:3]] == [500, 500, 200]
    assert len({body["id"] for _, body in posts[:3]}) == 1  # one notification, posted 3 times
    assert posts[2][1]["event"] == "review.requested"
    assert "Initech" in posts[2][1]["text"] and posts[2][1]["deal_id"] == "DL-N"
    outbox = service.data.outbox.for_deal("DL-N")
    assert [(o["event"], o["status"], o["attempts"]) for o in outbox] == [
        ("review.requested", "sent", 3)]
    assert "HTTPStatusError" in (outbox[0]["last_error"] or "")


def test_status_threads_overdue_and_a_decided_wait_with_no_worker(
        settings: Settings, database_url: str) -> None:
    """Without workers nothing fires: the deal shows as overdue; a decision cancels it."""
    quick = settings.model_copy(update={"review_remind_after": _seconds(1),
                                        "review_escalate_after": None,
                                        "review_expire_after": _seconds(3600)})
    with DealService(quick) as service:
        service.start(make_deal("OV-1", "80000.00"))
        env = cli_env(database_url)
        status = json.loads(run_cli(["status", "OV-1", "--json"], env).stdout)
        assert [(d["name"], d["then"]) for d in status["deadlines"]] == [
            ("review.remind", "notify the reviewers again"),
            ("review.expire", "end the deal as expired; nothing further runs")]
        remind_at, expire_at = (datetime.fromisoformat(d["due_at"]) for d in status["deadlines"])
        assert timedelta(seconds=3598) < expire_at - remind_at < timedelta(seconds=3600)
        assert "deadline review.expire at" in run_cli(["status", "OV-1"], env).stdout
        time.sleep(1.5)
        overdue = run_cli(["threads", "--overdue", "--json"], env).stdout
        assert [t["deal_id"] for t in json.loads(overdue)["threads"]] == ["OV-1"]
        remind = next(d for d in service.data.deadlines.for_thread(thread_id_for("OV-1"))
                      if d.name == "review.remind")
        service.resume("OV-1", {"decision": "approve", "reviewer": "ann"})
        assert service.fire_deadline(remind.id) == "cancelled"  # its wait ended: never fired
        assert _fired(service, "OV-1") == []
        assert json.loads(run_cli(["threads", "--overdue", "--json"], env).stdout)[
            "threads"] == []
        cancelled = [e for e in service.audit("OV-1") if e.action == "deadline.cancelled"]
        assert cancelled[0].detail["deadlines"] == ["review.remind", "review.expire"]
        again = run_cli(["resume", "OV-1", "--decision", "reject"], env)
        assert again.returncode == 4
        assert "the deal was already approved by ann at" in again.stderr


@pytest.mark.parametrize("answer", ["approve", "expiry"])
def test_the_graph_alone_applies_whatever_claimed_the_wait_first(
        service: DealService, answer: str) -> None:
    """A resume from plain LangGraph still gets the winner: the claim lives in Postgres."""
    service.start(make_deal("GR-1", "80000.00"))
    thread = thread_id_for("GR-1")
    snapshot = service.snapshot(thread)
    key = snapshot.tasks[0].id
    origin = Origin("GR-1", agent="reviewer", step="human_review", thread_id=thread)
    winner = ({"expired": {"deadline": "review.expire", "due_at": "now"}}
              if answer == "expiry" else
              {"decision": "approve", "comment": "", "reviewer": "ann"})
    assert service.data.waits.claim(origin, key, winner, "test").won
    config: Any = {"configurable": {"thread_id": thread}}
    with service.leases.hold(thread):
        service.graph.invoke(Command(resume={"decision": "reject"}), config,
                             context=service.context)
    state = service.graph.get_state(config).values
    assert state.get("outcome") == ("expired" if answer == "expiry" else None)
    assert state["reviews"][-1].decision == ("expire" if answer == "expiry" else "approve")


def test_a_claimed_answer_whose_job_was_lost_is_applied_by_the_sweep(
        service: DealService) -> None:
    """The API claims, then dies before queueing: the sweep finds the claim and applies it."""
    service.start(make_deal("LOST-1", "80000.00"))
    service.claim_review("LOST-1", {"decision": "approve", "reviewer": "ann"})
    assert service.status("LOST-1").status == "waiting_review"  # claimed, not applied
    assert service.data.waits.unapplied(0) == [thread_id_for("LOST-1")]
    assert service.apply_claim("LOST-1") == "waiting_signature"
    assert service.data.waits.unapplied(0) == []
    assert [r["reviewer"] for r in service.status("LOST-1").context["reviews"]] == ["ann"]
