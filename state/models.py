"""Domain models: the deal input and what each agent produces.

All are frozen pydantic models. They travel in the graph state, are stored in
checkpoints (and come back as themselves), and are rendered by the CLI as JSON.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from state.numerals import plain_number

Currency = Literal["USD", "EUR", "GBP", "CAD", "AUD"]
DealType = Literal["subscription", "implementation", "consulting"]
SignatureEventName = Literal["signature.completed", "signature.declined"]
SIGNATURE_EVENTS: tuple[SignatureEventName, ...] = ("signature.completed", "signature.declined")
# how a signature wait can end: an event from the provider, or its deadline
SignatureOutcome = SignatureEventName | Literal["signature.expired"]
SupervisorMode = Literal["rules", "llm", "hybrid"]
Outcome = Literal["completed", "disqualified", "declined", "rejected", "expired", "cancelled"]
Status = Literal["running", "waiting_review", "waiting_signature", "waiting_event", "completed",
                 "disqualified", "declined", "rejected", "expired", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = get_args(Status)
OPEN_STATUSES: tuple[Status, ...] = tuple(
    s for s in STATUSES if s == "running" or s.startswith("waiting_"))
"""The statuses of a thread that has not ended: running, or waiting for something."""

# Indicative rates used only by the review policy (a threshold stated in USD).
USD_PER_UNIT: dict[str, Decimal] = {"USD": Decimal("1"), "EUR": Decimal("1.08"),
                                     "GBP": Decimal("1.27"), "CAD": Decimal("0.73"),
                                     "AUD": Decimal("0.66")}

MAX_DEAL_VALUE = Decimal("1000000000")


def _is_control(ch: str) -> bool:
    return ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F


def _no_control_chars(value: str) -> str:
    """Text that may span lines: newlines and tabs, no other control character."""
    if any(_is_control(ch) and ch not in "\n\t" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _one_line(value: str) -> str:
    """A name or label: no control character at all, newlines and tabs included."""
    if any(_is_control(ch) for ch in value):
        raise ValueError("must be one line without control characters")
    return value


def _cents(value: Decimal) -> Decimal:
    """Amounts are stored and compared to the cent: 12, 12.00 and 1.2e1 are one amount."""
    return value.quantize(Decimal("0.01"))


# Text must be a plain numeral: `1_000` and `١٠٠٠` are refused, not read as 1000.
Plain = BeforeValidator(plain_number)
Amount = Annotated[Decimal, Plain, Field(gt=0, le=MAX_DEAL_VALUE, decimal_places=2),
                   AfterValidator(_cents)]
Count = Annotated[int, Plain]


DealId = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
                 AfterValidator(_one_line)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64),
                      AfterValidator(_one_line)]
Email = Annotated[str, StringConstraints(
    strip_whitespace=True, max_length=254,
    pattern=r"^[^@\s<>\"'\x00-\x1f]+@[^@\s<>\"'\x00-\x1f]+\.[^@\s<>\"'\x00-\x1f]+$")]
Notes = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_no_control_chars)]
Comment = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_control_chars)]



class Frozen(BaseModel):
    """Base for every domain model: immutable, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LeadAttributes(Frozen):
    """What sales knows about the lead; the lead agent scores it."""

    company_size: Count = Field(default=50, ge=1, le=10_000_000, description="Employees.")
    budget: Annotated[Decimal, Plain, Field(ge=0, le=MAX_DEAL_VALUE, decimal_places=2),
                      AfterValidator(_cents)] | None = None
    industry: ShortText = "software"
    engagement: Count = Field(default=50, ge=0, le=100, description="Engagement score 0-100.")
    contact_name: Name = "Alex Buyer"
    contact_email: Email = "buyer@example.com"
    notes: Notes = ""


class DealInput(Frozen):
    """A deal as it enters dealflow. Validated at the edge: bad input writes nothing."""

    deal_id: DealId
    client: Name
    value: Amount
    currency: Currency = "USD"
    deal_type: DealType = "implementation"
    lead: LeadAttributes = Field(default_factory=LeadAttributes)
    payment_terms_days: int | None = Field(default=None, ge=0, le=365)  # None: the setting's

    def terms_days(self, default: int) -> int:
        """Days to pay: the deal's own terms (a reviewer's edit), else `default`."""
        return default if self.payment_terms_days is None else self.payment_terms_days

    @property
    def value_usd(self) -> Decimal:
        """The deal value in USD at the indicative rate (for the review policy)."""
        return self.value * USD_PER_UNIT[self.currency]


class Qualification(Frozen):
    """The lead agent's verdict."""

    score: int = Field(ge=0, le=10)
    qualified: bool
    icp_fit: bool
    reasons: tuple[str, ...]


class LeadRecord(Frozen):
    """The CRM's lead record after qualification."""

    record_id: int
    deal_id: str
    score: int
    qualified: bool
    icp_fit: bool


class ProjectTask(Frozen):
    """One task of a delivery project."""

    title: str
    owner_role: str
    due_in_days: int


class Project(Frozen):
    """The delivery project created in the project tool."""

    project_id: str
    name: str
    template: str
    tasks: tuple[ProjectTask, ...]


class Contract(Frozen):
    """The rendered contract as stored in the contract repository."""

    contract_id: str
    template_version: str
    sha256: str
    text: str


class SignerReminder(Frozen):
    """A reminder the e-sign system sent to an envelope's signer."""

    reminder_id: str
    envelope_id: str
    sent_at: datetime


class Envelope(Frozen):
    """The e-signature envelope sent to the signer."""

    envelope_id: str
    contract_id: str
    signer_name: str
    signer_email: str
    sent_at: datetime


class SignatureEvent(Frozen):
    """The external event that ended the signature wait."""

    event: SignatureOutcome
    received_at: datetime


class InvoiceLine(Frozen):
    """One line of an invoice."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


class InvoiceDraft(Frozen):
    """An invoice before billing numbers it."""

    currency: Currency
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    tax_rate: Decimal
    tax: Decimal
    total: Decimal
    issued_on: date
    due_on: date


class Invoice(InvoiceDraft):
    """An issued invoice: the draft plus the number billing assigned (gap-free)."""

    number: str


class Failure(Frozen):
    """A step that still failed after its retries."""

    step: str
    error_type: str
    error: str
    system: str | None = None
    attempts: int
    failed_at: datetime


class LLMUsage(Frozen):
    """Model calls, tokens and estimated cost of a thread's supervisor (summed)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal("0")

    def __add__(self, other: LLMUsage) -> LLMUsage:
        """Sum two usages, field by field."""
        return LLMUsage(**{name: getattr(self, name) + getattr(other, name)
                           for name in LLMUsage.model_fields})


class Escalation(Frozen):
    """Why the supervisor handed the thread to a person (not a failed step)."""

    reason: str
    requested_by: Literal["model", "guard", "budget"]
    history: tuple[str, ...] = ()


ReviewKind = Literal["approval", "failure", "escalation"]
ReviewChoice = Literal["approve", "reject", "retry"]
ReviewResult = ReviewChoice | Literal["expire"]  # a person's choice, or the review's deadline


class ReviewDecision(Frozen):
    """A person's decision on a review interrupt."""

    kind: ReviewKind
    decision: ReviewResult
    comment: str = ""
    reviewer: str = "reviewer"
    steps: tuple[str, ...] = ()
    decided_at: datetime
