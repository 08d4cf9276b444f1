"""Sample step outputs and decisions, shared by the router and guard tables."""

from datetime import UTC, datetime
from decimal import Decimal

from state.models import (
    Contract,
    Envelope,
    Invoice,
    Project,
    Qualification,
    ReviewDecision,
    SignatureEvent,
)

NOW = datetime(2026, 11, 25, tzinfo=UTC)
QUALIFIED = Qualification(score=8, qualified=True, icp_fit=True, reasons=())
UNQUALIFIED = Qualification(score=2, qualified=False, icp_fit=False, reasons=())
PROJECT = Project(project_id="P", name="n", template="t", tasks=())
CONTRACT = Contract(contract_id="C", template_version="v", sha256="0" * 64, text="t")
ENVELOPE = Envelope(envelope_id="E", contract_id="C", signer_name="s", signer_email="s@x.io",
                    sent_at=NOW)
SIGNED = SignatureEvent(event="signature.completed", received_at=NOW)
DECLINED = SignatureEvent(event="signature.declined", received_at=NOW)
APPROVAL = ReviewDecision(kind="approval", decision="approve", decided_at=NOW)
REJECTION = ReviewDecision(kind="approval", decision="reject", decided_at=NOW)
INVOICE = Invoice(number="INV-1", currency="USD", lines=(), subtotal=Decimal(0),
                  tax_rate=Decimal(0), tax=Decimal(0), total=Decimal(0), issued_on=NOW.date(),
                  due_on=NOW.date())
