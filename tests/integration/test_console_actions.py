"""The operations console's actions on `DealService`, without a browser (the CLI's way)."""

from __future__ import annotations

import pytest

from dealflow.api import DealService
from dealflow.console_actions import fork_deal, recover_deal, retry_step, run_now
from dealflow.console_cancel import VoidFailed, cancel_deal
from dealflow.errors import Decided, InvalidInput, NotWaiting
from state.config import Settings
from state.registry import DealRegistry
from tests.helpers import make_deal


def test_cancel_a_deal_waiting_for_its_signature_voids_the_envelope(
        service: DealService) -> None:
    report = service.start(make_deal("CA-1"))
    assert report.status == "waiting_signature"
    envelope = report.context["envelope"]["envelope_id"]
    done = cancel_deal(service, "CA-1", "ops", "client went with a competitor")
    assert "cancelled" in done.message and envelope in done.message
    assert done.follow_up is None
    assert service.status("CA-1").status == "cancelled"
    assert service.deal("CA-1").status == "cancelled"
    recorded = DealRegistry(service.pool).recorded_report("CA-1")  # what `dealflow status` prints
    assert recorded is not None and recorded["report"]["status"] == "cancelled"
    assert [(e["envelope_id"], e["status"], e["void_reason"])
            for e in service.records("CA-1")["envelopes"]] == [(envelope, "voided", "cancelled")]
    assert service.data.deadlines.for_thread(report.thread_id, scheduled_only=True) == []
    entry = next(e for e in service.audit("CA-1") if e.action == "console.cancel")
    assert (entry.actor, entry.reason) == ("ops", "client went with a competitor")
    with pytest.raises(NotWaiting, match="is cancelled: there is nothing to cancel"):
        cancel_deal(service, "CA-1", "ops")
    with pytest.raises(Decided, match="the signature wait already ended with cancelled by ops"):
        service.event("CA-1", "signature.completed")  # the signer is too late
    with pytest.raises(NotWaiting, match="is not stuck: it is cancelled"):
        recover_deal(service, "CA-1", "ops")
    assert service.continue_thread("CA-1").status == "cancelled"  # recover leaves it be
    assert service.recover() == []


def test_cancel_a_review_and_a_completed_deal(service: DealService) -> None:
    review = service.start(make_deal("CA-2", "80000.00"))
    assert review.status == "waiting_review"
    cancel_deal(service, "CA-2", "ops")
    assert service.status("CA-2").status == "cancelled"
    with pytest.raises(Decided, match="cancelled"):  # the review ended with the cancellation
        service.resume("CA-2", {"decision": "approve", "reviewer": "rita"})
    service.start(make_deal("CA-3"))
    service.event("CA-3", "signature.completed")
    with pytest.raises(NotWaiting, match="CA-3 is completed: there is nothing to cancel"):
        cancel_deal(service, "CA-3", "ops")


def test_a_decision_first_refuses_the_cancellation(service: DealService) -> None:
    service.start(make_deal("CA-4", "80000.00"))
    service.claim_review("CA-4", {"decision": "approve", "reviewer": "rita"})  # not applied
    with pytest.raises(Decided, match="already approved by rita"):
        cancel_deal(service, "CA-4", "ops")
    assert service.status("CA-4").status == "waiting_review"


def test_fork_a_completed_deal_with_a_new_value(service: DealService) -> None:
    service.start(make_deal("FK-1", "12000.00"))
    service.event("FK-1", "signature.completed")
    after_qualify = next(c for c in service.history("FK-1")
                         if c["completed_steps"] == ["qualify_lead"]
                         and c["next"] == ["supervisor"])
    with pytest.raises(InvalidInput, match="changes no term"):
        fork_deal(service, "FK-1", after_qualify["checkpoint_id"], {"value": "12000.00"}, "ops")
    with pytest.raises(InvalidInput, match="payment_terms_days: must be a whole number"):
        fork_deal(service, "FK-1", after_qualify["checkpoint_id"],
                  {"payment_terms_days": "<b>x</b>"}, "ops")
    with pytest.raises(InvalidInput, match="has no checkpoint"):
        fork_deal(service, "FK-1", "nope", {"value": "15000"}, "ops")
    done = fork_deal(service, "FK-1", after_qualify["checkpoint_id"],
                     {"value": "15000", "payment_terms_days": ""}, "ops", "re-priced")
    assert "value 12000.00 → 15000.00" in done.message
    assert done.follow_up is not None and done.follow_up.action == "continue"
    assert service.deal("FK-1").status == "running"
    assert run_now(service, done.follow_up) == "waiting_signature"
    report = service.status("FK-1")
    assert report.context["deal"]["value"] == "15000.00"
    current = [c for c in service.records("FK-1")["contracts"] if c["branch"] == "current"]
    assert len(current) == 1 and "15,000.00 USD" in current[0]["body"]
    entry = next(e for e in service.audit("FK-1") if e.action == "console.fork")
    assert entry.actor == "ops" and entry.detail["edited"] == {
        "value": {"before": "12000.00", "after": "15000.00"}}


def test_retry_a_failed_step_and_refusals(settings: Settings) -> None:
    down = settings.model_copy(update={"sandbox_outage": {"esign": 3}})
    with DealService(down) as service:
        assert service.start(make_deal("RT-1")).status == "waiting_review"
        done = retry_step(service, "RT-1", "ops", "esign is back")
        assert done.follow_up is not None
        again = retry_step(service, "RT-1", "ops", "esign is back")
        assert again.follow_up is None and "recorded already" in again.message
        assert run_now(service, done.follow_up) == "waiting_signature"
        decision = next(e for e in service.audit("RT-1") if e.action == "review.decision")
        assert decision.actor == "ops"
        with pytest.raises(NotWaiting, match="no failed step waiting for a retry; it is "
                                             "waiting_signature"):
            retry_step(service, "RT-1", "ops")
        with pytest.raises(NotWaiting, match="is not stuck: it is waiting_signature"):
            recover_deal(service, "RT-1", "ops")


def test_recover_a_thread_edited_while_it_waited(service: DealService) -> None:
    report = service.start(make_deal("RC-1"))
    config = {"configurable": {"thread_id": report.thread_id}}
    deal = make_deal("RC-1").model_copy(update={"client": "Acme AG"})
    service.graph.update_state(config, {"deal": deal})  # type: ignore[arg-type]
    done = recover_deal(service, "RC-1", "ops")
    assert done.follow_up is not None
    assert run_now(service, done.follow_up) == "waiting_signature"
    assert any(e.action == "console.recover" and e.actor == "ops"
               for e in service.audit("RC-1"))


def test_an_e_sign_outage_during_a_cancellation_is_finished_by_cancelling_again(
        service: DealService, settings: Settings) -> None:
    report = service.start(make_deal("CA-5"))
    envelope = report.context["envelope"]["envelope_id"]
    with DealService(settings.model_copy(update={"sandbox_outage": {"esign": 1}})) as down:
        with pytest.raises(VoidFailed, match=r"CA-5 was not cancelled: voiding its envelope "
                                             r"failed .*cancel again to finish"):
            cancel_deal(down, "CA-5", "ops")
        assert down.status("CA-5").status == "waiting_signature"
        with pytest.raises(Decided, match="already ended with cancelled by ops"):
            down.event("CA-5", "signature.completed")  # the wait is the cancellation's
        cancel_deal(down, "CA-5", "ops")  # the outage is over: again finishes it
    assert service.status("CA-5").status == "cancelled"
    assert [e["status"] for e in service.records("CA-5")["envelopes"]] == ["voided"]
    assert envelope in [e["envelope_id"] for e in service.records("CA-5")["envelopes"]]
