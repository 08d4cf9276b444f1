"""Billing on Stripe, against a local Stripe: one invoice per deal whatever fails."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from agents.systems import SystemUnavailable
from agents.systems.http import ProviderRefused
from agents.systems.stripe import StripeBilling
from dealflow.api import DealService
from state.config import Settings
from state.models import InvoiceDraft, InvoiceLine
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal
from tests.providers.stripe import API_KEY, StripeServer

SAGA = ("/v1/customers", "/v1/tax_rates", "/v1/invoices", "/v1/invoiceitems",
        r"/v1/invoices/in_\w+/finalize", r"/v1/invoices/in_\w+/send")
LINE = InvoiceLine(description="Implementation", quantity=Decimal(1),
                   unit_price=Decimal("1000.00"), amount=Decimal("1000.00"))
DRAFT = InvoiceDraft(currency="EUR", lines=(LINE,), subtotal=Decimal("1000.00"),
                     tax_rate=Decimal("0.08"), tax=Decimal("80.00"), total=Decimal("1080.00"),
                     issued_on=date.today(), due_on=date.today())


@pytest.fixture
def stripe() -> Iterator[StripeServer]:
    with StripeServer(search_lag=2.0) as server:
        yield server


def on_stripe(settings: Settings, stripe: StripeServer, **more: object) -> Settings:
    return settings.model_copy(update={
        "billing": "stripe", "stripe_api_key": SecretStr(API_KEY),
        "stripe_api_base": stripe.base_url, **more})


def invoices_of(stripe: StripeServer, deal_id: str) -> list[dict[str, Any]]:
    return [i for i in stripe.invoices.values()
            if i["metadata"].get("dealflow_deal_id") == deal_id]


def signed(service: DealService, deal_id: str) -> str:
    assert service.start(make_deal(deal_id)).status == "waiting_signature"
    return service.event(deal_id, "signature.completed").status


def test_a_deal_is_invoiced_once_on_stripe_with_its_number(settings: Settings,
                                                          stripe: StripeServer) -> None:
    with DealService(on_stripe(settings, stripe)) as service:
        assert signed(service, "ST-1") == "completed"
        (invoice,) = invoices_of(stripe, "ST-1")
        assert invoice["status"] == "open" and stripe.sent == [invoice["id"]]
        shown = service.status("ST-1").context["invoice"]
        assert shown["number"] == invoice["number"] == "DF-0001"
        # tax is Stripe's tax rate on the invoice, not an item; amounts in minor units
        assert invoice["total"] - invoice["subtotal"] == 96_000  # cents: 8% of 12,000.00
        assert all(line["description"] != "Tax" for line in invoice["lines"]["data"])
        assert shown["total"] == "12960.00"
    assert stripe.problems == []  # every request fits Stripe's API definition
    posts = stripe.requests("POST")
    assert posts and all(r.headers.get("idempotency-key", "").startswith("ST-1:")
                         for r in posts)


@pytest.mark.parametrize("call", SAGA)
def test_a_lost_response_on_any_call_makes_no_second_object(settings: Settings,
                                                            stripe: StripeServer,
                                                            call: str) -> None:
    stripe.fail("POST", call, "drop")
    with DealService(on_stripe(settings, stripe)) as service:
        assert signed(service, "LOST-1") == "completed"
        effects = [e for e in service.data.effects.effects("LOST-1")
                   if e["effect"] == "billing.issue_invoice"]
    (invoice,) = invoices_of(stripe, "LOST-1")
    assert len(stripe.customers) == 1 and len(stripe.tax_rates) == 1
    assert stripe.sent == [invoice["id"]]
    assert effects[0]["attempts"] == 1  # repeated inside the call: no step attempt spent
    assert any(r for r, status in stripe.log if status == 0)  # the drop happened


def test_rate_limits_and_503_bursts_are_waited_out_without_spending_attempts(
        settings: Settings, stripe: StripeServer) -> None:
    stripe.fail("POST", "/v1/invoices", "429", times=2, retry_after="1")
    stripe.fail("POST", "/v1/invoiceitems", "503", times=3, retry_after="0")
    with DealService(on_stripe(settings, stripe, max_attempts=1)) as service:
        service.start(make_deal("RL-1"))
        started = time.monotonic()
        assert service.event("RL-1", "signature.completed").status == "completed"
        assert time.monotonic() - started >= 2.0  # Retry-After: 1, twice
    assert len(invoices_of(stripe, "RL-1")) == 1


def test_stripe_down_sends_the_step_to_review_then_a_retry_invoices_once(
        settings: Settings, stripe: StripeServer) -> None:
    with DealService(on_stripe(settings, stripe, provider_retries=1)) as service:
        service.start(make_deal("DOWN-1"))
        stripe.down()
        report = service.event("DOWN-1", "signature.completed")
        assert report.status == "waiting_review"
        failure = report.context["failures"][0]
        assert failure["step"] == "generate_invoice" and failure["system"] == "billing"
        # the last attempt asked Stripe first whether an earlier one went through
        assert failure["error"] == "billing: GET /v1/invoices/search: 503 stripe is down"
        assert "\n" not in failure["error"] and API_KEY not in failure["error"]
        stripe.up()
        assert service.resume("DOWN-1", {"decision": "retry"}).status == "completed"
    assert len(invoices_of(stripe, "DOWN-1")) == 1


def test_a_refused_key_is_one_line_naming_the_system(settings: Settings,
                                                     stripe: StripeServer) -> None:
    wrong = on_stripe(settings, stripe, stripe_api_key=SecretStr("sk_test_wrong"),
                      max_attempts=1)
    with DealService(wrong) as service:
        service.start(make_deal("KEY-1"))
        report = service.event("KEY-1", "signature.completed")
        failure = report.context["failures"][0]
        assert failure["error"] == "billing: POST /v1/customers: 401 invalid credentials"
    assert not stripe.invoices


def _billing(stripe: StripeServer, settings: Settings) -> StripeBilling:
    return StripeBilling.from_settings(on_stripe(settings, stripe))


def test_search_lag_then_a_repeat_inside_the_key_window_replays(
        settings: Settings, stripe: StripeServer) -> None:
    billing = _billing(stripe, settings)
    first = billing.issue_invoice("LAG-1", DRAFT, key="LAG-1:generate_invoice:abc")
    assert billing.lookup("LAG-1:generate_invoice:abc") is None  # search lags 2 s
    again = billing.issue_invoice("LAG-1", DRAFT, key="LAG-1:generate_invoice:abc")
    assert again == first and len(stripe.invoices) == 1 and len(stripe.sent) == 1
    time.sleep(2.1)
    assert billing.lookup("LAG-1:generate_invoice:abc") == first


def test_past_the_key_window_the_invoice_is_found_not_made_again(
        settings: Settings, stripe: StripeServer) -> None:
    billing = _billing(stripe, settings)
    first = billing.issue_invoice("OLD-1", DRAFT, key="OLD-1:generate_invoice:abc")
    stripe.forget_keys()  # a day later: Stripe no longer knows the keys
    assert billing.lookup("OLD-1:generate_invoice:abc") == first
    assert len(stripe.invoices) == 1 and len(stripe.sent) == 1


def test_a_draft_left_past_the_window_is_finished_or_sent_to_review(
        settings: Settings, stripe: StripeServer) -> None:
    billing = _billing(stripe, settings)
    stripe.fail("POST", r"/v1/invoices/in_\w+/finalize", "500", times=10)
    with pytest.raises(SystemUnavailable):  # the crash: every line there, not finalized
        billing.issue_invoice("HALF-1", DRAFT, key="HALF-1:k")
    stripe.fail("POST", "/v1/invoiceitems", "500", times=10)
    with pytest.raises(SystemUnavailable):  # the crash: the invoice without its lines
        billing.issue_invoice("HALF-2", DRAFT, key="HALF-2:k")
    stripe.forget_keys()
    stripe.clear_faults()
    finished = billing.lookup("HALF-1:k")
    assert finished is not None and finished.number == "DF-0001"
    with pytest.raises(ProviderRefused, match=r"is draft with 0 of 1 lines, past Stripe's"):
        billing.lookup("HALF-2:k")
    assert len(stripe.invoices) == 2 and len(stripe.sent) == 1


def test_a_key_reused_with_other_terms_is_refused_by_stripe(
        settings: Settings, stripe: StripeServer) -> None:
    billing = _billing(stripe, settings)
    billing.issue_invoice("RE-1", DRAFT, key="RE-1:k")
    other = DRAFT.model_copy(update={"lines": (LINE.model_copy(update={
        "description": "Something else"}),)})
    with pytest.raises(ProviderRefused, match="only be used with the same parameters"):
        billing.issue_invoice("RE-1", other, key="RE-1:k")


def test_systems_check_makes_one_authenticated_call_and_names_a_refusal(
        stripe: StripeServer) -> None:
    env = cli_env(None, DEALFLOW_BILLING="stripe", DEALFLOW_STRIPE_API_KEY=API_KEY,
                  DEALFLOW_STRIPE_API_BASE=stripe.base_url)
    done = run_cli(["systems", "check", "--json"], env)
    assert done.returncode == 0, done.stderr
    billing = json.loads(done.stdout)["systems"][-1]
    assert billing == {"system": "billing", "provider": "stripe", "ok": True,
                       "said": "reachable, API key accepted"}
    assert [r.method for r in stripe.requests()] == ["GET"]  # it created nothing
    wrong = run_cli(["systems", "check"], {**env, "DEALFLOW_STRIPE_API_KEY": "sk_test_bad"})
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == ("dealflow systems check: error: billing (stripe): "
                                    "GET /v1/invoices: 401 invalid credentials")
    assert "sk_test_bad" not in wrong.stdout + wrong.stderr


def test_the_secret_key_is_nowhere_in_the_database(settings: Settings,
                                                   stripe: StripeServer) -> None:
    stripe.fail("POST", "/v1/invoices", "500", times=20)  # failures, spans, a review
    with DealService(on_stripe(settings, stripe, provider_retries=0)) as service:
        service.start(make_deal("SEC-1"))
        assert service.event("SEC-1", "signature.completed").status == "waiting_review"
        stripe.clear_faults()
        assert service.resume("SEC-1", {"decision": "retry"}).status == "completed"
        with service.pool.connection() as conn:
            columns = conn.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = 'public'").fetchall()
            found = []
            for c in columns:
                where = (f'position(%s::bytea in "{c["column_name"]}") > 0'
                         if c["data_type"] == "bytea"
                         else f'"{c["column_name"]}"::text LIKE \'%%\' || %s || \'%%\'')
                row = conn.execute(f'SELECT count(*) AS n FROM "{c["table_name"]}"'
                                   f" WHERE {where}", (API_KEY,)).fetchone()
                if row and row["n"]:
                    found.append(f"{c['table_name']}.{c['column_name']}")
    assert len(columns) > 50 and found == []
