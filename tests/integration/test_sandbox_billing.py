"""The sandbox billing system numbers invoices without gaps, under concurrent calls."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

from agents.systems.sandbox import SandboxBilling
from state.database import open_pool
from state.models import InvoiceDraft, InvoiceLine


def _draft(amount: str) -> InvoiceDraft:
    value = Decimal(amount)
    line = InvoiceLine(description="Work", quantity=Decimal(1), unit_price=value, amount=value)
    return InvoiceDraft(currency="EUR", lines=(line,), subtotal=value, tax_rate=Decimal("0.2"),
                        tax=value / 5, total=value + value / 5, issued_on=date(2026, 1, 1),
                        due_on=date(2026, 1, 31))


def test_concurrent_invoices_are_numbered_without_gaps_and_a_key_issues_once(
        database_url: str) -> None:
    pool = open_pool(database_url, max_size=8)
    try:
        billing = SandboxBilling(pool)
        calls = [(f"D-{i}", f"key-{i}", f"{100 + i}.00") for i in range(24)]
        calls += calls[:6]  # the same keys again, racing the first calls

        def issue(call: tuple[str, str, str]) -> tuple[str, str]:
            deal_id, key, amount = call
            return key, billing.issue_invoice(deal_id, _draft(amount), key=key).number

        with ThreadPoolExecutor(8) as threads:
            issued = list(threads.map(issue, calls))
        by_key: dict[str, set[str]] = {}
        for key, number in issued:
            by_key.setdefault(key, set()).add(number)
        assert all(len(numbers) == 1 for numbers in by_key.values())  # a key: one invoice
        numbers = sorted(n for numbers in by_key.values() for n in numbers)
        assert numbers == [f"INV-{n:06d}" for n in range(1, 25)]  # 24 keys: 1..24, no gap
        stored = [r["number"] for d in {c[0] for c in calls} for r in billing.records(d)]
        assert sorted(stored) == numbers
        with pool.connection() as conn:
            counter = conn.execute("SELECT last_number FROM sandbox_billing_counter").fetchone()
        assert counter is not None and counter["last_number"] == 24
    finally:
        pool.close()
