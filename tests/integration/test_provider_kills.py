"""SIGKILL around every call to a real provider: exactly one object per deal at the provider.

Each case runs a deal to its signature wait, kills the `dealflow event` process
that invoices it (at an effect kill point, or by the local Stripe right after it
carried out one call of the saga and before its answer left), then `dealflow
recover` and the deal's end. Stripe's search lags a second behind writes, so
recovery meets the lag too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from state.crash import PHASES
from tests.integration.crash_matrix import WARM, _env
from tests.providers.stripe import API_KEY, StripeServer

SAGA = ("/v1/customers", "/v1/tax_rates", "/v1/invoices", "/v1/invoiceitems",
        r"/v1/invoices/in_\w+/finalize", r"/v1/invoices/in_\w+/send")
LEAD = json.dumps({"company_size": 300, "industry": "software", "engagement": 80,
                   "budget": "100000"})


@pytest.fixture
def lead(tmp_path: Path) -> str:
    path = tmp_path / "lead.json"
    path.write_text(LEAD)
    return str(path)


@pytest.fixture
def stripe() -> Iterator[StripeServer]:
    with StripeServer(search_lag=1.0) as server:
        yield server


def _stripe_env(url: str, stripe: StripeServer, **extra: str) -> dict[str, str]:
    return _env(url, DEALFLOW_BILLING="stripe", DEALFLOW_STRIPE_API_KEY=API_KEY,
                DEALFLOW_STRIPE_API_BASE=stripe.base_url, **extra)


def _to_signature(url: str, stripe: StripeServer, deal_id: str, lead: str) -> None:
    done = WARM.run(["run", "--deal-id", deal_id, "--client", "Kill Co", "--value", "9000",
                     "--lead", lead], _stripe_env(url, stripe))
    assert json.loads(done.stdout)["status"] == "waiting_signature", done.stderr


def _recover_and_check(url: str, stripe: StripeServer, deal_id: str) -> None:
    env = _stripe_env(url, stripe)
    WARM.run(["recover"], env)
    status = json.loads(WARM.run(["status", deal_id], env).stdout)
    if status["status"] == "waiting_signature":  # killed before the event was recorded
        WARM.run(["event", deal_id, "signature.completed"], env)
        status = json.loads(WARM.run(["status", deal_id], env).stdout)
    invoices = [i for i in stripe.invoices.values()
                if i["metadata"].get("dealflow_deal_id") == deal_id]
    assert status["status"] == "completed", status
    assert len(invoices) == 1, invoices
    assert stripe.sent.count(invoices[0]["id"]) == 1
    assert status["context"]["invoice"]["number"] == invoices[0]["number"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("phase", PHASES)
def test_a_kill_at_an_effect_point_of_the_stripe_invoice(database_url: str, lead: str,
                                                         stripe: StripeServer,
                                                         phase: str) -> None:
    deal_id = f"KP-{phase}"
    _to_signature(database_url, stripe, deal_id, lead)
    crash = _stripe_env(database_url, stripe, DEALFLOW_CRASH_AT=f"generate_invoice:{phase}")
    assert WARM.run(["event", deal_id, "signature.completed"], crash).returncode == -9
    _recover_and_check(database_url, stripe, deal_id)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("call", SAGA)
def test_a_kill_after_stripe_carried_out_a_call_before_its_answer(
        database_url: str, lead: str, stripe: StripeServer, call: str) -> None:
    deal_id = "KS-" + call.rsplit("/", 1)[-1]
    _to_signature(database_url, stripe, deal_id, lead)
    proc = WARM.start(["event", deal_id, "signature.completed", "--json"],
                      _stripe_env(database_url, stripe))
    stripe.on_kill = proc.kill
    stripe.fail("POST", call, "kill")
    assert proc.wait(timeout=120) == -9
    _recover_and_check(database_url, stripe, deal_id)
