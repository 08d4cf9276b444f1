"""The deal process end to end through the service API, on real Postgres."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dealflow.api import DealService
from dealflow.errors import DealConflict, InvalidInput, NotFound, NotWaiting
from state.config import Settings
from tests.helpers import ONE_EACH, WEAK_LEAD, counts, make_deal


def test_small_deal_runs_to_signature_then_completes(service: DealService) -> None:
    report = service.start(make_deal("SMALL-1", "12000.00"))
    assert report.status == "waiting_signature"
    assert report.completed_steps[0] == "qualify_lead"
    assert set(report.completed_steps[1:3]) == {"create_project", "generate_contract"}
    assert report.completed_steps[3] == "send_for_signature"
    assert report.pending is not None and report.pending["expected_events"] == [
        "signature.completed", "signature.declined"]

    done = service.event(report.thread_id, "signature.completed")
    assert done.status == "completed"
    assert done.completed_steps[-2:] == ["await_signature", "generate_invoice"]
    assert done.pending is None
    records = service.records("SMALL-1")
    assert counts(records) == ONE_EACH
    invoice = records["invoices"][0]
    assert invoice["number"] == "INV-000001"
    assert invoice["subtotal"] == Decimal("12000.00")
    assert invoice["tax"] == Decimal("960.00")
    assert invoice["total"] == Decimal("12960.00")
    assert (invoice["due_on"] - invoice["issued_on"]).days == 30
    assert done.context["invoice"]["number"] == "INV-000001"


def test_project_and_contract_run_in_one_super_step(service: DealService) -> None:
    service.start(make_deal("PAR-1"))
    history = service.history("PAR-1")
    parallel = [e for e in history if sorted(e["next"]) == ["create_project", "generate_contract"]]
    assert len(parallel) == 1, [e["next"] for e in history]


def test_large_deal_waits_for_approval_before_any_side_effect(service: DealService) -> None:
    report = service.start(make_deal("BIG-1", "60000.00"))
    assert report.status == "waiting_review"
    assert report.completed_steps == ["qualify_lead"]
    assert report.pending is not None
    action = report.pending["action_requests"][0]
    assert action["name"] == "approve_deal" and action["args"]["value"] == "60000.00"
    assert report.pending["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]
    assert counts(service.records("BIG-1")) == {**dict.fromkeys(ONE_EACH, 0), "crm": 1}

    approved = service.resume("BIG-1", {"decision": "approve", "comment": "ok", "reviewer": "kim"})
    assert approved.status == "waiting_signature"
    assert approved.context["reviews"][0]["reviewer"] == "kim"
    done = service.event("BIG-1", "signature.completed")
    assert done.status == "completed"
    assert counts(service.records("BIG-1")) == ONE_EACH


def test_large_deal_rejected_ends_without_side_effects(service: DealService) -> None:
    service.start(make_deal("BIG-2", "60000.00"))
    report = service.resume("BIG-2", {"decision": "reject", "comment": "margin too low"})
    assert report.status == "rejected"
    assert report.context["outcome"] == "rejected"
    assert counts(service.records("BIG-2")) == {**dict.fromkeys(ONE_EACH, 0), "crm": 1}


def test_threshold_applies_to_value_in_usd(service: DealService) -> None:
    report = service.start(make_deal("EUR-1", "48000.00", currency="EUR"))
    assert report.status == "waiting_review"  # 48,000 EUR is about 51,840 USD


def test_esign_outage_review_retry_completes_with_one_record_each(settings: Settings) -> None:
    down = settings.model_copy(update={"sandbox_outage": {"esign": 3}})
    with DealService(down) as service:
        report = service.start(make_deal("OUT-1"))
        assert report.status == "waiting_review"
        assert report.completed_steps[0] == "qualify_lead"
        assert set(report.completed_steps[1:]) == {"create_project", "generate_contract"}
        failure = report.context["failures"][0]
        assert failure["step"] == "send_for_signature"
        assert failure["system"] == "esign" and failure["attempts"] == 3
        assert report.pending is not None
        assert report.pending["action_requests"][0]["name"] == "retry_failed_step"

        with pytest.raises(InvalidInput, match="does not fit the pending failure review"):
            service.resume("OUT-1", {"decision": "approve"})
        retried = service.resume("OUT-1", {"decision": "retry"})
        assert retried.status == "waiting_signature"
        assert retried.context["failures"] == []
        done = service.event("OUT-1", "signature.completed")
        assert done.status == "completed"
        assert counts(service.records("OUT-1")) == ONE_EACH
        assert done.completed_steps.count("create_project") == 1
        assert done.completed_steps.count("send_for_signature") == 1


def test_outage_shorter_than_retries_recovers_without_review(settings: Settings) -> None:
    flaky = settings.model_copy(update={"sandbox_outage": {"pm": 2}})
    with DealService(flaky) as service:
        report = service.start(make_deal("FLAKY-1"))
        assert report.status == "waiting_signature"
        assert report.context["reviews"] == []
        assert counts(service.records("FLAKY-1"))["projects"] == 1


def test_failure_review_rejected_ends_the_deal(settings: Settings) -> None:
    down = settings.model_copy(update={"sandbox_outage": {"crm": 5}})
    with DealService(down) as service:
        report = service.start(make_deal("OUT-2"))
        assert report.status == "waiting_review"
        assert report.context["failures"][0]["step"] == "qualify_lead"
        assert service.resume("OUT-2", "reject").status == "rejected"


def test_declined_signature_ends_without_invoice(service: DealService) -> None:
    service.start(make_deal("DEC-1"))
    report = service.event("DEC-1", "signature.declined")
    assert report.status == "declined"
    assert counts(service.records("DEC-1"))["invoices"] == 0


def test_unqualified_lead_is_disqualified(service: DealService) -> None:
    report = service.start(make_deal("DQ-1", lead=WEAK_LEAD))
    assert report.status == "disqualified"
    assert report.completed_steps == ["qualify_lead"]
    assert report.context["qualification"]["qualified"] is False
    assert any("outside the ideal customer profile" in r
               for r in report.context["qualification"]["reasons"])
    assert counts(service.records("DQ-1")) == {**dict.fromkeys(ONE_EACH, 0), "crm": 1}


def test_same_deal_started_twice_returns_the_same_thread(service: DealService) -> None:
    first = service.start(make_deal("TWICE-1"))
    second = service.start(make_deal("TWICE-1"))
    assert second.thread_id == first.thread_id
    assert second.status == first.status == "waiting_signature"
    assert len(service.threads()) == 1
    assert counts(service.records("TWICE-1"))["envelopes"] == 1
    with pytest.raises(DealConflict, match="different terms"):
        service.start(make_deal("TWICE-1", "99.00"))


def test_wrong_commands_change_nothing(service: DealService) -> None:
    service.start(make_deal("W-1", "60000.00"))
    before = len(service.history("W-1"))
    with pytest.raises(NotWaiting, match="not waiting for a signature event"):
        service.event("W-1", "signature.completed")
    with pytest.raises(InvalidInput, match="does not fit the pending approval review"):
        service.resume("W-1", {"decision": "retry"})
    with pytest.raises(InvalidInput, match="decision"):
        service.resume("W-1", {"decision": "maybe"})
    with pytest.raises(InvalidInput, match="unknown signature event"):
        service.event("W-1", "signature.lost")
    with pytest.raises(NotFound):
        service.status("no-such-thread")
    assert len(service.history("W-1")) == before
    assert service.status("W-1").status == "waiting_review"


def test_gap_free_invoice_numbers_survive_a_billing_failure(settings: Settings) -> None:
    once = settings.model_copy(update={"sandbox_outage": {"billing": 1}, "max_attempts": 1})
    with DealService(once) as service:
        service.start(make_deal("INV-A"))
        failed = service.event("INV-A", "signature.completed")
        assert failed.status == "waiting_review"
        service.start(make_deal("INV-B"))
        assert service.event("INV-B", "signature.completed").status == "completed"
        assert service.resume("INV-A", "retry").status == "completed"
        numbers = [service.records(d)["invoices"][0]["number"] for d in ("INV-B", "INV-A")]
    assert numbers == ["INV-000001", "INV-000002"]
