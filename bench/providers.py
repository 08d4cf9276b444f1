"""The effect overhead: a deal's provider calls alone beside the whole invoicing run.

Against a local Stripe (`tests.providers.stripe`) whose every request takes
50 ms, as a real provider's round trip does: the invoicing step's run from the
signature event to the deal's completion, beside the same Stripe calls made
directly by the connector. The ratio is what dealflow adds around the calls
(its ledger claim, receipt, checkpoints and the supervisor's steps).
"""

from __future__ import annotations

import time
import uuid
from datetime import date
from typing import Any

from pydantic import SecretStr

from agents.finance.invoicing import draft_invoice
from agents.systems.stripe import StripeBilling
from bench.common import median
from dealflow.api import DealService
from state.config import Settings
from state.models import DealInput
from tests.providers.stripe import API_KEY, StripeServer

LATENCY_S = 0.05


def effect_overhead(url: str, repeat: int = 10) -> dict[str, Any]:
    """Median seconds: event→completed on Stripe, the connector's calls alone, their ratio."""
    with StripeServer() as stripe:
        stripe.latency = LATENCY_S
        settings = Settings(database_url=url, billing="stripe",
                            stripe_api_key=SecretStr(API_KEY), stripe_api_base=stripe.base_url)
        with DealService(settings) as service:
            deals = [_deal() for _ in range(repeat + 1)]
            for deal in deals:
                service.start(deal)
            whole = []
            for deal in deals:
                started = time.perf_counter()
                service.event(deal.deal_id, "signature.completed")
                whole.append(time.perf_counter() - started)
            requests = len(stripe.requests()) / len(deals)
            invoice = service.status(deals[0].deal_id).context["invoice"]
            draft = draft_invoice(deals[0], tax_rate=settings.tax_rate,
                                  terms_days=settings.payment_terms_days,
                                  issued_on=date.today())  # the finance agent's draft
        billing = StripeBilling.from_settings(settings)
        alone = []
        for _ in range(repeat + 1):
            started = time.perf_counter()
            billing.issue_invoice("BENCH", draft, key=uuid.uuid4().hex)
            alone.append(time.perf_counter() - started)
    deal_s, calls_s = median(whole[1:]), median(alone[1:])
    return {"latency_s": LATENCY_S, "requests_per_deal": requests, "deal_s": deal_s,
            "calls_s": calls_s, "ratio": deal_s / calls_s, "number": invoice["number"]}


def _deal() -> DealInput:
    return DealInput(deal_id=f"FX-{uuid.uuid4().hex[:10]}", client="Bench Co",
                     value="12000.00")

