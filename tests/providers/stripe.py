"""A local Stripe: customers, tax rates, invoices and items, with Stripe's idempotency rules.

- A POST with an `Idempotency-Key` saves its answer once the endpoint ran; the
  same key again with the same endpoint and parameters gets that answer again
  (`Idempotent-Replayed: true`), with others a 400 `idempotency_error`. Keys
  older than `key_window` seconds are forgotten (`forget_keys()` ages them all).
- Search (`/v1/invoices/search`) sees an invoice only `search_lag` seconds
  after it was created, as Stripe's search lags behind writes.
- Every request is checked against the parameters Stripe's API defines
  (`openapi/stripe.json`, see its extract script): an unknown parameter or a
  missing required one is Stripe's 400, and is kept in `problems`.
- Finalize numbers the invoice; tax is each line's amount at the invoice's tax
  rate, rounded half up, as Stripe computes exclusive tax rates per line.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from tests.providers.server import Answer, ProviderServer, Request

API_KEY = "sk_test_dealflow"
DOCUMENT = json.loads((Path(__file__).parent / "openapi" / "stripe.json").read_text())
_ID = re.compile(r"/(in_\w+)(?=/|$)")
_METADATA = re.compile(r"metadata\['([a-z_]+)'\]:'([^']*)'")


def nested(flat: dict[str, str]) -> dict[str, Any]:
    """Stripe's form keys (`metadata[k]`, `default_tax_rates[0]`) as nested values."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class StripeServer(ProviderServer):
    """Stripe's `/v1` API, the parts dealflow uses."""

    def __init__(self, search_lag: float = 0.0, key_window: float = 86400.0) -> None:
        """A Stripe whose search lags `search_lag` seconds behind writes."""
        super().__init__("stripe")
        self.search_lag, self.key_window = search_lag, key_window
        self.customers: dict[str, dict[str, Any]] = {}
        self.tax_rates: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.sent: list[str] = []  # invoice ids, once per email sent
        self.problems: list[str] = []  # requests Stripe's API definition does not allow
        self._keys: dict[str, tuple[str, dict[str, str], Answer, float]] = {}
        self._ids = itertools.count(1)
        self._numbers = itertools.count(1)
        for method, pattern, handler in (
                ("POST", r"/v1/customers", self._customer),
                ("POST", r"/v1/tax_rates", self._tax_rate),
                ("GET", r"/v1/tax_rates", self._tax_rates),
                ("POST", r"/v1/invoices", self._invoice),
                ("GET", r"/v1/invoices", self._invoice_list),
                ("GET", r"/v1/invoices/search", self._search),
                ("GET", r"/v1/invoices/(in_\w+)", self._get_invoice),
                ("POST", r"/v1/invoiceitems", self._item),
                ("POST", r"/v1/invoices/(in_\w+)/finalize", self._finalize),
                ("POST", r"/v1/invoices/(in_\w+)/send", self._send)):
            self.route(method, pattern, self._idempotent(handler) if method == "POST"
                       else handler)

    def authorized(self, request: Request) -> bool:
        """Bearer secret key."""
        return request.headers.get("authorization") == f"Bearer {API_KEY}"

    def handle(self, request: Request) -> Answer | None:
        """Stripe's 400 for a parameter its API does not define, else the route's answer."""
        problem = self._misfit(request)
        if problem is not None:
            with self.lock:
                self.problems.append(f"{request.method} {request.path}: {problem}")
            return _error(400, "invalid_request_error", problem)
        return super().handle(request)

    def _misfit(self, request: Request) -> str | None:
        operation = f"{request.method} {_ID.sub('/{invoice}', request.path)}"
        defined = DOCUMENT["operations"].get(operation)
        if defined is None:
            return f"Unrecognized request URL ({operation})"
        given = set(nested(request.form) if request.method == "POST" else request.query)
        unknown = sorted(given - set(defined["params"]))
        if unknown:
            return f"Received unknown parameter: {unknown[0]}"
        missing = sorted(set(defined["required"]) - given)
        return f"Missing required param: {missing[0]}." if missing else None

    def forget_keys(self) -> None:
        """Every idempotency key is past the window (a day has gone by)."""
        self._keys.clear()
        for invoice in self.invoices.values():
            invoice["created"] -= 2 * 86400

    def _idempotent(self, handler: Any) -> Any:
        def serve(request: Request, match: re.Match[str]) -> Answer:
            key = request.headers.get("idempotency-key")
            if key is None:
                return handler(request, match)
            seen = self._keys.get(key)
            if seen is not None and time.time() - seen[3] < self.key_window:
                path, params, answer, _ = seen
                if (path, params) != (request.path, request.form):
                    return _error(400, "idempotency_error", "Keys for idempotent requests can "
                                  "only be used with the same parameters they were first used "
                                  f"with. Try using a key other than '{key}'")
                return Answer(answer.status, answer.body, {"Idempotent-Replayed": "true"})
            answer = handler(request, match)
            self._keys[key] = (request.path, request.form, answer, time.time())
            return answer
        return serve

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def _customer(self, request: Request, match: re.Match[str]) -> Answer:
        params = nested(request.form)
        customer = {"id": self._id("cus"), "object": "customer", "name": params.get("name"),
                    "metadata": params.get("metadata", {})}
        self.customers[customer["id"]] = customer
        return Answer(200, customer)

    def _tax_rate(self, request: Request, match: re.Match[str]) -> Answer:
        params = nested(request.form)
        rate = {"id": self._id("txr"), "object": "tax_rate", "active": True,
                "display_name": params["display_name"],
                "percentage": float(params["percentage"]),
                "inclusive": params["inclusive"] == "true", "metadata": params.get("metadata", {})}
        self.tax_rates[rate["id"]] = rate
        return Answer(200, rate)

    def _tax_rates(self, request: Request, match: re.Match[str]) -> Answer:
        return Answer(200, {"object": "list", "data": list(self.tax_rates.values()),
                            "has_more": False})

    def _invoice(self, request: Request, match: re.Match[str]) -> Answer:
        params = nested(request.form)
        if params.get("customer") not in self.customers:
            return _error(400, "invalid_request_error", "No such customer")
        rates = [self.tax_rates[t] for t in params.get("default_tax_rates", {}).values()]
        invoice = {"id": self._id("in"), "object": "invoice", "status": "draft",
                   "number": None, "customer": params["customer"],
                   "currency": params["currency"], "created": int(time.time()),
                   "collection_method": params["collection_method"],
                   "days_until_due": int(params["days_until_due"]), "due_date": None,
                   "default_tax_rates": rates, "metadata": params.get("metadata", {}),
                   "lines": {"object": "list", "data": [], "total_count": 0},
                   "subtotal": 0, "total": 0, "status_transitions": {"finalized_at": None}}
        self.invoices[invoice["id"]] = invoice
        return Answer(200, invoice)

    def _item(self, request: Request, match: re.Match[str]) -> Answer:
        params = nested(request.form)
        invoice = self.invoices.get(params.get("invoice", ""))
        if invoice is None or invoice["status"] != "draft":
            return _error(400, "invalid_request_error", "the invoice is not a draft")
        line = {"id": self._id("il"), "object": "line_item", "amount": int(params["amount"]),
                "description": params["description"], "metadata": params.get("metadata", {})}
        invoice["lines"]["data"].append(line)
        invoice["lines"]["total_count"] += 1
        invoice["subtotal"] = sum(item["amount"] for item in invoice["lines"]["data"])
        return Answer(200, {**line, "object": "invoiceitem", "invoice": invoice["id"]})

    def _finalize(self, request: Request, match: re.Match[str]) -> Answer:
        invoice = self.invoices[match[1]]
        if invoice["status"] != "draft":
            return _error(400, "invalid_request_error", "This invoice is already finalized")
        now = int(time.time())
        tax = sum(_tax(line["amount"], rate["percentage"]) for line in invoice["lines"]["data"]
                  for rate in invoice["default_tax_rates"])
        invoice.update(status="open", number=f"DF-{next(self._numbers):04d}",
                       total=invoice["subtotal"] + tax,
                       due_date=now + invoice["days_until_due"] * 86400,
                       status_transitions={"finalized_at": now})
        return Answer(200, invoice)

    def _send(self, request: Request, match: re.Match[str]) -> Answer:
        invoice = self.invoices[match[1]]
        if invoice["status"] != "open":
            return _error(400, "invalid_request_error", "only an open invoice can be sent")
        self.sent.append(invoice["id"])
        return Answer(200, invoice)

    def _get_invoice(self, request: Request, match: re.Match[str]) -> Answer:
        invoice = self.invoices.get(match[1])
        return Answer(200, invoice) if invoice else _error(404, "invalid_request_error",
                                                           "No such invoice")

    def _invoice_list(self, request: Request, match: re.Match[str]) -> Answer:
        limit = int(request.query.get("limit", 10))
        return Answer(200, {"object": "list", "data": list(self.invoices.values())[:limit],
                            "has_more": False})

    def _search(self, request: Request, match: re.Match[str]) -> Answer:
        found = _METADATA.fullmatch(request.query.get("query", ""))
        if found is None:
            return _error(400, "invalid_request_error", "unsupported search query")
        name, value = found[1], found[2]
        seen_before = time.time() - self.search_lag
        data = [i for i in self.invoices.values()
                if i["metadata"].get(name) == value and i["created"] <= seen_before]
        return Answer(200, {"object": "search_result", "data": data, "has_more": False})


def _tax(amount: int, percentage: float) -> int:
    return int((Decimal(amount) * Decimal(str(percentage)) / 100)
               .to_integral_value(rounding=ROUND_HALF_UP))


def _error(status: int, kind: str, message: str) -> Answer:
    return Answer(status, {"error": {"type": kind, "message": message}})
