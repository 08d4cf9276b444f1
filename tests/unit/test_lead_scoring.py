from decimal import Decimal

from agents.lead.scoring import QUALIFY_AT, score_lead
from tests.helpers import WEAK_LEAD, make_deal


def test_strong_lead_scores_ten_with_a_reason_per_factor() -> None:
    result = score_lead(make_deal(value="10000.00"))
    assert result.score == 10 and result.qualified and result.icp_fit
    assert len(result.reasons) == 5
    assert result.reasons[-1] == f"score 10/10 meets the bar of {QUALIFY_AT}"


def test_weak_lead_is_not_qualified() -> None:
    result = score_lead(make_deal(lead=WEAK_LEAD))
    assert result.score == 0 and not result.qualified and not result.icp_fit
    assert "too small" in result.reasons[0]


def test_budget_coverage_bands() -> None:
    def budget_points(budget: str | None) -> int:
        deal = make_deal(value="10000.00", lead={"budget": budget})
        return score_lead(deal).score - 7  # size 3 + industry 2 + engagement 2
    assert [budget_points(b) for b in ("10000", "7000", "4000", "100", None)] == [3, 2, 1, 0, 1]


def test_industry_case_does_not_matter_and_midmarket_fits() -> None:
    deal = make_deal(lead={"industry": "FinTech", "company_size": 60})
    result = score_lead(deal)
    assert result.icp_fit and result.score == 2 + 3 + 2 + 2
    assert make_deal(value="1", lead={"budget": Decimal("0.5")}).lead.budget == Decimal("0.5")
