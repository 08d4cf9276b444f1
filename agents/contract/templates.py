"""The contract template (a constant, versioned) and its rendering."""

from __future__ import annotations

import hashlib
from string import Template

from state.models import DealInput

TEMPLATE_VERSION = "msa-2026.1"

CONTRACT_TEMPLATE = Template(
    """MASTER SERVICES AGREEMENT ($template_version)

Deal reference: $deal_id
Customer: $client
Customer contact: $contact_name <$contact_email>

1. Scope. The provider delivers the $deal_type engagement described in the
   order form attached to this agreement.
2. Fees. The customer pays $value $currency, invoiced on signature and due
   within $payment_terms days of the invoice date. Taxes are added as applicable.
3. Term. This agreement starts on the date of the last signature and runs for
   twelve (12) months.
4. Confidentiality, liability and the remaining terms follow the provider's
   standard terms, version $template_version.

Signed for the customer: $contact_name
"""
)


def render_contract(deal: DealInput, payment_terms_days: int) -> tuple[str, str]:
    """Render the contract for a deal; return its text and SHA-256 hex digest."""
    text = CONTRACT_TEMPLATE.substitute(
        template_version=TEMPLATE_VERSION,
        deal_id=deal.deal_id,
        client=deal.client,
        contact_name=deal.lead.contact_name,
        contact_email=deal.lead.contact_email,
        deal_type=deal.deal_type,
        value=f"{deal.value:,.2f}",
        currency=deal.currency,
        payment_terms=payment_terms_days,
    )
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()
