from datetime import date
from decimal import Decimal

from agents.finance.invoicing import draft_invoice
from tests.helpers import make_deal


def test_lines_add_up_to_the_value_exactly() -> None:
    deal = make_deal(value="1000.01", deal_type="implementation")
    draft = draft_invoice(deal, tax_rate=Decimal("0.08"), terms_days=30,
                          issued_on=date(2026, 1, 31))
    amounts = [line.amount for line in draft.lines]
    assert amounts == [Decimal("700.01"), Decimal("300.00")]
    assert draft.subtotal == Decimal("1000.01")
    assert draft.tax == Decimal("80.00")  # 80.0008 rounds half up to cents
    assert draft.total == Decimal("1080.01")
    assert draft.due_on == date(2026, 3, 2)


def test_rounding_is_half_up_on_cents() -> None:
    deal = make_deal(value="0.50", deal_type="subscription")
    draft = draft_invoice(deal, tax_rate=Decimal("0.05"), terms_days=0, issued_on=date(2026, 1, 1))
    assert draft.tax == Decimal("0.03")  # 0.025 → 0.03
    assert draft.due_on == draft.issued_on


def test_every_deal_type_has_lines_with_the_deal_id() -> None:
    for deal_type in ("subscription", "implementation", "consulting"):
        deal = make_deal(value="999.99", deal_type=deal_type)
        draft = draft_invoice(deal, tax_rate=Decimal("0"), terms_days=30,
                              issued_on=date(2026, 5, 1))
        assert sum(line.amount for line in draft.lines) == Decimal("999.99")
        assert all(deal.deal_id in line.description for line in draft.lines)
