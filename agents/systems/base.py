"""Interfaces of the systems of record and the error they raise when down.

Every mutating call takes an idempotency `key` (deal and step). The effect
ledger makes sure a call happens once; `lookup(key)` lets it ask a system whether
an interrupted call went through. The sandbox is idempotent by key as well; a
real provider need not be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from state.models import (
    Contract,
    DealInput,
    Envelope,
    Invoice,
    InvoiceDraft,
    LeadRecord,
    Project,
    ProjectTask,
    Qualification,
)

Record = dict[str, Any]


class SystemUnavailable(ConnectionError):
    """A system of record did not answer; LangGraph's RetryPolicy retries these."""

    def __init__(self, system: str, message: str) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system


class CRM(Protocol):
    """The CRM holding lead records."""

    def record_qualification(
        self, deal: DealInput, result: Qualification, *, key: str
    ) -> LeadRecord:
        """Update the lead record with the qualification result."""
        ...

    def lookup(self, key: str) -> LeadRecord | None:
        """The update made with idempotency `key`, if the CRM has it."""
        ...

    def records(self, deal_id: str) -> list[Record]:
        """Lead records of the deal."""
        ...


class ProjectTool(Protocol):
    """The project-management tool."""

    def create_project(
        self, deal_id: str, name: str, template: str, tasks: tuple[ProjectTask, ...], *, key: str
    ) -> Project:
        """Create the delivery project and its tasks."""
        ...

    def lookup(self, key: str) -> Project | None:
        """The project created with idempotency `key`, if any."""
        ...

    def records(self, deal_id: str) -> list[Record]:
        """Projects (with tasks) of the deal."""
        ...


class ContractRepository(Protocol):
    """Where rendered contracts are stored."""

    def store_contract(
        self, deal_id: str, text: str, sha256: str, template_version: str, *, key: str
    ) -> Contract:
        """Store the contract text and its hash."""
        ...

    def lookup(self, key: str) -> Contract | None:
        """The contract stored with idempotency `key`, if any."""
        ...

    def records(self, deal_id: str) -> list[Record]:
        """Contracts of the deal."""
        ...


class ESign(Protocol):
    """The e-signature provider."""

    def send_envelope(
        self, deal_id: str, contract: Contract, signer_name: str, signer_email: str, *, key: str
    ) -> Envelope:
        """Send the contract to the signer."""
        ...

    def lookup(self, key: str) -> Envelope | None:
        """The envelope sent with idempotency `key`, if any."""
        ...

    def records(self, deal_id: str) -> list[Record]:
        """Envelopes of the deal."""
        ...


class Billing(Protocol):
    """The billing system; it numbers invoices without gaps."""

    def issue_invoice(self, deal_id: str, draft: InvoiceDraft, *, key: str) -> Invoice:
        """Number and send the invoice."""
        ...

    def lookup(self, key: str) -> Invoice | None:
        """The invoice issued with idempotency `key`, if any."""
        ...

    def records(self, deal_id: str) -> list[Record]:
        """Invoices of the deal."""
        ...


@dataclass(frozen=True)
class Systems:
    """The set of systems one deal runs against."""

    crm: CRM
    pm: ProjectTool
    contracts: ContractRepository
    esign: ESign
    billing: Billing

    def records(self, deal_id: str) -> dict[str, list[Record]]:
        """What each system holds for the deal, keyed as the CLI shows it."""
        return {
            "crm": self.crm.records(deal_id),
            "projects": self.pm.records(deal_id),
            "contracts": self.contracts.records(deal_id),
            "envelopes": self.esign.records(deal_id),
            "invoices": self.billing.records(deal_id),
        }
