"""The sandbox billing system: invoices numbered without gaps, a key served once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

import pytest

from agents.systems import IdempotencyConflict
from agents.systems.sandbox import SandboxBilling
from bench.common import CountingCursor, counted_statements
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


def test_a_served_request_is_one_statement_and_a_reused_key_changes_nothing(
        database_url: str) -> None:
    """The same key with other terms is refused with nothing written; the same terms reuse."""
    with counted_statements():
        pool = open_pool(database_url, max_size=2)
    logged: list[tuple[str, str]] = []

    def log(system: str, key: str) -> tuple[str, tuple[str, str]]:
        logged.append((system, key))
        return "INSERT INTO sandbox_test_calls (system, key) VALUES (%s, %s)", (system, key)

    try:
        with pool.connection() as conn:
            conn.execute("CREATE TABLE sandbox_test_calls (system text, key text)")
        billing = SandboxBilling(pool, log=log)
        before = CountingCursor.statements
        first = billing.issue_invoice("D-1", _draft("100.00"), key="k-1")
        # the invoice, the counter, the request log and the count: one statement
        assert CountingCursor.statements - before == 1
        again = billing.issue_invoice("D-1", _draft("100.00"), key="k-1")
        assert again == first
        with pytest.raises(IdempotencyConflict, match="k-1 was used before with other"):
            billing.issue_invoice("D-1", _draft("999.00"), key="k-1")
        second = billing.issue_invoice("D-2", _draft("50.00"), key="k-2")
        assert (first.number, second.number) == ("INV-000001", "INV-000002")  # no gap
        with pool.connection() as conn:
            calls = conn.execute("SELECT count(*) AS n FROM sandbox_test_calls").fetchone()
            requests = conn.execute("SELECT count(*) AS n FROM sandbox_requests").fetchone()
        # served: k-1, k-1 again (absorbed by the system, counted by the log), k-2;
        # the refused call was logged by nobody: its statement was undone
        assert calls is not None and calls["n"] == 3
        assert requests is not None and requests["n"] == 2
        assert len(logged) == 4  # the refused call asked for its log row too
    finally:
        pool.close()
