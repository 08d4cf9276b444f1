"""Lead scoring: four factors, 0-10 points, each with a reason a person can read."""

from __future__ import annotations

from decimal import Decimal

from state.models import DealInput, Qualification

ICP_INDUSTRIES = frozenset(
    {"software", "saas", "fintech", "healthcare", "manufacturing", "logistics", "retail"}
)
QUALIFY_AT = 6
ICP_MIN_EMPLOYEES = 50


def _size_points(employees: int) -> tuple[int, str]:
    if employees >= 250:
        return 3, f"company size {employees} employees: enterprise (+3)"
    if employees >= ICP_MIN_EMPLOYEES:
        return 2, f"company size {employees} employees: mid-market (+2)"
    if employees >= 10:
        return 1, f"company size {employees} employees: small business (+1)"
    return 0, f"company size {employees} employees: too small (+0)"


def _budget_points(budget: Decimal | None, value: Decimal) -> tuple[int, str]:
    if budget is None:
        return 1, "budget unknown (+1)"
    coverage = budget / value
    if coverage >= 1:
        return 3, f"budget covers the deal value ({coverage:.0%}) (+3)"
    if coverage >= Decimal("0.7"):
        return 2, f"budget covers most of the deal value ({coverage:.0%}) (+2)"
    if coverage >= Decimal("0.4"):
        return 1, f"budget covers part of the deal value ({coverage:.0%}) (+1)"
    return 0, f"budget far below the deal value ({coverage:.0%}) (+0)"


def _industry_points(industry: str) -> tuple[int, str]:
    if industry.lower() in ICP_INDUSTRIES:
        return 2, f"industry {industry!r} is in the ideal customer profile (+2)"
    return 0, f"industry {industry!r} is outside the ideal customer profile (+0)"


def _engagement_points(engagement: int) -> tuple[int, str]:
    if engagement >= 70:
        return 2, f"engagement {engagement}/100: high (+2)"
    if engagement >= 40:
        return 1, f"engagement {engagement}/100: moderate (+1)"
    return 0, f"engagement {engagement}/100: low (+0)"


def score_lead(deal: DealInput) -> Qualification:
    """Score the deal's lead from size, budget fit, industry and engagement."""
    lead = deal.lead
    factors = (
        _size_points(lead.company_size),
        _budget_points(lead.budget, deal.value),
        _industry_points(lead.industry),
        _engagement_points(lead.engagement),
    )
    score = sum(points for points, _ in factors)
    qualified = score >= QUALIFY_AT
    verdict = f"score {score}/10 {'meets' if qualified else 'is below'} the bar of {QUALIFY_AT}"
    return Qualification(
        score=score,
        qualified=qualified,
        icp_fit=lead.industry.lower() in ICP_INDUSTRIES and lead.company_size >= ICP_MIN_EMPLOYEES,
        reasons=(*(reason for _, reason in factors), verdict),
    )
