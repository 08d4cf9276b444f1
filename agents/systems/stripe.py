"""Billing on Stripe: one invoice per deal, exactly once, over Stripe's `/v1` API.

An invoice is a saga of Stripe calls: the client's customer, the invoice (in
draft, its metadata naming the ledger's key and the deal), one invoice item per
line, then finalize (Stripe numbers it) and send. **Every POST carries an
`Idempotency-Key`** derived from the ledger's key (`<key>:invoice`,
`<key>:item:2`, ...): inside Stripe's key window (24 hours) a repeated call gets
the first answer, so any attempt may repeat the whole saga.

`lookup(key)` (the ledger asks it after an attempt without a receipt) searches
the invoice by `metadata['dealflow_key']`. Search lags behind writes (up to a
minute): not found means "repeat the saga with the same keys", which is safe
while the keys live, and a search a day later has long caught up. A draft left
past the window is finished (all its lines there) or sent to review (some
missing): never a second invoice. Tax is a Stripe tax rate on the invoice, not
an invoice item; amounts are in minor units.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from agents.systems.base import Record
from agents.systems.http import ProviderClient, ProviderRefused
from agents.systems.providers import provider_client, required
from state.config import Settings
from state.database import Pool
from state.models import Invoice, InvoiceDraft, InvoiceLine

KEY_WINDOW_SECONDS = 23 * 3600  # Stripe keeps keys at least 24 h: a margin for clocks
SENT = ("open", "paid", "uncollectible")


def minor(amount: Decimal) -> int:
    """An amount in minor units (every currency dealflow takes has two decimals)."""
    return int((amount * 100).to_integral_value())


def major(amount: int) -> Decimal:
    """Minor units back to an amount with two decimals."""
    return (Decimal(amount) / 100).quantize(Decimal("0.01"))


def form(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Stripe's form encoding of nested parameters: `metadata[key]`, `items[0][x]`."""
    flat: dict[str, str] = {}
    for name, value in params.items():
        field = f"{prefix}[{name}]" if prefix else str(name)
        if isinstance(value, dict):
            flat.update(form(value, field))
        elif isinstance(value, list | tuple):
            flat.update(form({str(n): item for n, item in enumerate(value)}, field))
        elif isinstance(value, bool):
            flat[field] = "true" if value else "false"
        elif value is not None:
            flat[field] = str(value)
    return flat


class StripeBilling:
    """The `Billing` system on Stripe (see the module's docstring)."""

    name, records_label, record_id = "billing", "invoices", "number"

    def __init__(self, client: ProviderClient, *, now: Any = time.time) -> None:
        """Bill through `client` (Stripe's API with the secret key)."""
        self._client = client
        self._now = now
        self._tax_rates: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings, pool: Pool | None = None) -> StripeBilling:
        """Stripe at `DEALFLOW_STRIPE_API_BASE` with `DEALFLOW_STRIPE_API_KEY`.

        `pool`: the database its rate limit (if declared) is shared on.
        """
        (api_key,) = required(settings, "stripe_api_key")
        return cls(provider_client(settings, "billing", settings.stripe_api_base,
                                   {"Authorization": f"Bearer {api_key}"}, provider="stripe",
                                   pool=pool))

    def issue_invoice(self, deal_id: str, draft: InvoiceDraft, *, key: str,
                      client: str | None = None) -> Invoice:
        """Create, number and send the deal's invoice once per `key`."""
        customer = self._post("/v1/customers", f"{key}:customer", {
            "name": client or deal_id, "metadata": {"dealflow_deal_id": deal_id}})
        invoice = self._post("/v1/invoices", f"{key}:invoice", {
            "customer": customer["id"], "collection_method": "send_invoice",
            "days_until_due": (draft.due_on - draft.issued_on).days,
            "currency": draft.currency.lower(), "auto_advance": False,
            "pending_invoice_items_behavior": "exclude",
            "default_tax_rates": [self._tax_rate(draft.tax_rate, key)] if draft.tax_rate else [],
            "metadata": {"dealflow_key": key, "dealflow_deal_id": deal_id,
                         "dealflow_lines": len(draft.lines)}})
        for n, line in enumerate(draft.lines):
            self._post("/v1/invoiceitems", f"{key}:item:{n}", {
                "customer": customer["id"], "invoice": invoice["id"],
                "currency": draft.currency.lower(), "amount": minor(line.amount),
                "description": line.description,
                "metadata": {"quantity": line.quantity, "unit_price": line.unit_price,
                             "dealflow_line": n}})
        return self._finish(invoice, key)

    def lookup(self, key: str) -> Invoice | None:
        """The invoice made with `key` if Stripe has it sent; None: repeat the saga."""
        found = self._search(f"metadata['dealflow_key']:'{key}'")
        if not found:
            return None
        invoice = found[0]
        if self._now() - invoice["created"] < KEY_WINDOW_SECONDS:
            # the keys still live: sending again is answered with the first send
            return self._finish(invoice, key) if invoice["status"] in SENT else None
        if invoice["status"] in SENT:
            return receipt(invoice)
        lines = int(invoice["metadata"].get("dealflow_lines", -1))
        if invoice["status"] == "draft" and invoice["lines"]["total_count"] == lines:
            return self._finish(invoice, key)
        raise ProviderRefused("billing", f"Stripe invoice {invoice['id']} for {key} is "
                              f"{invoice['status']} with {invoice['lines']['total_count']} of "
                              f"{lines} lines, past Stripe's idempotency window: finish or "
                              "void it in Stripe, then retry the step", 409)

    def records(self, deal_id: str) -> list[Record]:
        """The deal's invoices at Stripe (search: the newest may lag a minute)."""
        return [{"number": i["number"], "invoice_id": i["id"], "status": i["status"],
                 "currency": i["currency"].upper(), "total": str(major(i["total"]))}
                for i in self._search(f"metadata['dealflow_deal_id']:'{deal_id}'")]

    def check(self) -> str:
        """One authenticated read: the key is accepted."""
        self._client.send("GET", "/v1/invoices", repeatable=True, params={"limit": 1})
        return "reachable, API key accepted"

    def setup(self) -> list[str]:
        """Nothing to create: tax rates are made when first needed."""
        return []

    def _finish(self, invoice: dict[str, Any], key: str) -> Invoice:
        """Finalize a draft (Stripe numbers it) and send it; the receipt from Stripe's copy."""
        path = f"/v1/invoices/{invoice['id']}"
        if invoice["status"] == "draft":
            self._post(f"{path}/finalize", f"{key}:finalize", {"auto_advance": False})
        return receipt(self._post(f"{path}/send", f"{key}:send", {}))

    def _tax_rate(self, rate: Decimal, key: str) -> str:
        """The id of dealflow's exclusive tax rate of `rate` (made once, then found)."""
        percentage = str((rate * 100).normalize())
        if percentage not in self._tax_rates:
            listed = self._get("/v1/tax_rates", {"active": "true", "limit": 100})["data"]
            ours = [t["id"] for t in listed if not t["inclusive"]
                    and Decimal(str(t["percentage"])) == Decimal(percentage)
                    and t.get("metadata", {}).get("dealflow") == "1"]
            self._tax_rates[percentage] = ours[0] if ours else self._post(
                "/v1/tax_rates", f"{key}:tax_rate", {
                    "display_name": "Tax", "percentage": percentage, "inclusive": False,
                    "metadata": {"dealflow": "1"}})["id"]
        return self._tax_rates[percentage]

    def _search(self, query: str) -> list[dict[str, Any]]:
        return list(self._get("/v1/invoices/search", {"query": query, "limit": 10})["data"])

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._client.send("GET", path, repeatable=True, params=params)
        return dict(response.json())

    def _post(self, path: str, idempotency_key: str, params: dict[str, Any]) -> dict[str, Any]:
        response = self._client.send("POST", path, repeatable=True,
                                     idempotency_key=idempotency_key, data=form(params))
        return dict(response.json())


def receipt(invoice: dict[str, Any]) -> Invoice:
    """The `Invoice` dealflow records, from Stripe's: its number, its lines and its sums."""
    lines = sorted(invoice["lines"]["data"],
                   key=lambda line: int(line["metadata"].get("dealflow_line", 0)))
    rates = invoice.get("default_tax_rates") or []
    finalized = invoice.get("status_transitions", {}).get("finalized_at") or invoice["created"]
    return Invoice(
        number=invoice["number"], currency=invoice["currency"].upper(),
        lines=tuple(InvoiceLine(description=line["description"],
                                quantity=Decimal(line["metadata"]["quantity"]),
                                unit_price=Decimal(line["metadata"]["unit_price"]),
                                amount=major(line["amount"])) for line in lines),
        subtotal=major(invoice["subtotal"]),
        tax_rate=(Decimal(str(rates[0]["percentage"])) / 100) if rates else Decimal(0),
        tax=major(invoice["total"] - invoice["subtotal"]), total=major(invoice["total"]),
        issued_on=_day(finalized), due_on=_day(invoice["due_date"]))


def _day(timestamp: int) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()
