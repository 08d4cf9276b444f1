"""Edit before approve: a reviewer changes the value or payment terms and approves in one act."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from langgraph.types import Command

from dealflow.api import DealService
from dealflow.errors import InvalidInput
from graph.review_edit import edit_answer
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal
from tests.integration.fencing import wait_until

STRONG = {"company_size": 300, "engagement": 80, "budget": "200000"}


def _big(service: DealService, deal_id: str) -> dict[str, Any]:
    report = service.start(make_deal(deal_id, "120000.00", lead=STRONG))
    assert report.status == "waiting_review"
    assert report.pending is not None
    action = report.pending["action_requests"][0]
    assert report.pending["review_configs"][0]["allowed_decisions"] == [
        "approve", "edit", "reject"]
    return dict(action)


def test_an_edit_approves_on_the_new_terms_and_is_audited(service: DealService) -> None:
    action = _big(service, "ED-1")
    answer = edit_answer(action["args"], {"value": "40000.00", "payment_terms_days": 45},
                         action="approve_deal", comment="cut to phase one", reviewer="cfo")
    report = service.resume("ED-1", answer)
    assert report.status == "waiting_signature"
    (contract,) = service.records("ED-1")["contracts"]
    assert "40,000.00" in contract["body"] and "within 45 days" in contract["body"]
    done = service.event("ED-1", "signature.completed")
    assert done.status == "completed"
    (invoice,) = service.records("ED-1")["invoices"]
    assert Decimal(invoice["subtotal"]) == Decimal("40000.00")
    assert (invoice["due_on"] - invoice["issued_on"]).days == 45
    decision = next(e for e in service.audit("ED-1") if e.action == "review.decision")
    assert (decision.actor, decision.reason) == ("cfo", "cut to phase one")
    assert decision.detail["edited"] == {
        "value": {"before": "120000.00", "after": "40000.00"},
        "payment_terms_days": {"before": 30, "after": 45}}


@pytest.mark.parametrize(("changes", "message"), [
    ({"client": "Other Co"}, "client may not be changed in review; a reviewer may change "
                             "value, payment_terms_days"),
    ({"value": "-5"}, "edited value"),
    ({"payment_terms_days": 400}, "edited payment_terms_days"),
    ({"discount": "10"}, "no argument 'discount' to edit"),
    ({}, "the edit changes nothing: approve instead"),
])
def test_an_edit_the_policy_does_not_allow_is_refused_and_changes_nothing(
        service: DealService, changes: dict[str, Any], message: str) -> None:
    action = _big(service, "ED-2")
    answer = edit_answer(action["args"], changes, action="approve_deal")
    with pytest.raises(InvalidInput, match=message):
        service.resume("ED-2", answer)
    assert service.status("ED-2").status == "waiting_review"
    assert [e.action for e in service.audit("ED-2")].count("review.decision") == 0


def test_an_edit_of_a_failure_review_is_refused(settings: Any) -> None:
    down = settings.model_copy(update={"sandbox_outage": {"crm": 5}})
    with DealService(down) as service:
        report = service.start(make_deal("ED-3"))
        assert report.pending is not None
        action = report.pending["action_requests"][0]
        answer = edit_answer(action["args"], {"client": "x"}, action=action["name"])
        with pytest.raises(InvalidInput, match="an edit fits only an approval review"):
            service.resume("ED-3", answer)


def test_the_graph_takes_the_edit_as_a_command_resume(service: DealService) -> None:
    action = _big(service, "ED-4")
    config = {"configurable": {"thread_id": service.status("ED-4").thread_id}}
    answer = edit_answer(action["args"], {"value": "60000.00"}, action="approve_deal")
    # the API and the CLI claim the review first; the bare graph takes the same answer
    service.graph.invoke(Command(resume=answer), config, context=service.context)
    assert service.status("ED-4").context["deal"]["value"] == "60000.00"


def test_the_cli_sets_terms_and_the_api_takes_the_hitl_shape(
        service: DealService, database_url: str, api_factory: Any) -> None:
    _big(service, "ED-5")
    done = run_cli(["resume", "ED-5", "--decision", "approve", "--set", "value=50000.00",
                    "--set", "payment_terms_days=60", "--json"], cli_env(database_url))
    assert done.returncode == 0, done.stderr
    assert service.status("ED-5").status == "waiting_signature"
    wrong = run_cli(["resume", "ED-5", "--decision", "reject", "--set", "value=1"],
                    cli_env(database_url))
    assert wrong.returncode == 2 and "--set edits terms only with --decision approve" \
        in wrong.stderr
    action = _big(service, "ED-6")
    api = api_factory()
    body = edit_answer(action["args"], {"value": "45000.00"}, action="approve_deal")
    refused = api.post("/v1/deals/ED-6/review", edit_answer(
        action["args"], {"currency": "EUR"}, action="approve_deal"), api.reviewer)
    assert refused.status_code == 422 and "currency may not be changed" in refused.text
    taken = api.post("/v1/deals/ED-6/review", body, api.reviewer)
    assert taken.status_code == 202, taken.text
    wait_until(lambda: api.status("ED-6") == "waiting_signature", 120, "the edited approval")
    decision = next(e for e in service.audit("ED-6") if e.action == "review.decision")
    assert decision.actor == "rita-1"
    assert decision.detail["edited"]["value"]["after"] == "45000.00"
