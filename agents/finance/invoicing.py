"""Invoice drafting: line items per deal type, Decimal money, tax, net-N due date."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from state.models import DealInput, DealType, InvoiceDraft, InvoiceLine

CENT = Decimal("0.01")

# Share of the deal value per line, by deal type; the last line takes the rest.
LINE_SPLITS: dict[DealType, tuple[tuple[str, Decimal], ...]] = {
    "subscription": (("Annual subscription", Decimal("1")),),
    "implementation": (
        ("Implementation services", Decimal("0.7")),
        ("Onboarding and training", Decimal("0.3")),
    ),
    "consulting": (("Consulting engagement", Decimal("1")),),
}


def money(amount: Decimal) -> Decimal:
    """Round to cents, half up, as billing does."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def draft_invoice(
    deal: DealInput, *, tax_rate: Decimal, terms_days: int, issued_on: date
) -> InvoiceDraft:
    """Build the invoice for a deal; line amounts add up exactly to the deal value."""
    splits = LINE_SPLITS[deal.deal_type]
    lines: list[InvoiceLine] = []
    remaining = money(deal.value)
    for index, (description, share) in enumerate(splits):
        last = index == len(splits) - 1
        amount = remaining if last else money(deal.value * share)
        remaining -= amount
        lines.append(InvoiceLine(description=f"{description} ({deal.deal_id})",
                                 quantity=Decimal("1"), unit_price=amount, amount=amount))
    subtotal = sum((line.amount for line in lines), Decimal("0"))
    tax = money(subtotal * tax_rate)
    return InvoiceDraft(
        currency=deal.currency, lines=tuple(lines), subtotal=subtotal, tax_rate=tax_rate,
        tax=tax, total=subtotal + tax, issued_on=issued_on,
        due_on=issued_on + timedelta(days=terms_days),
    )
