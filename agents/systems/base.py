"""Interfaces of the systems of record and the error they raise when down.

Every mutating call takes an idempotency `key` (deal, step and a fingerprint of
the request). The effect
ledger makes sure a call happens once; `lookup(key)` lets it ask a system whether
an interrupted call went through. The sandbox is idempotent by key as well; a
real provider need not be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel

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
    SignerReminder,
)

if TYPE_CHECKING:
    from agents.systems.rate_limits import RateLimiter

Record = dict[str, Any]


class SystemUnavailable(ConnectionError):
    """A system of record did not answer; LangGraph's RetryPolicy retries these."""

    def __init__(self, system: str, message: str) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system


class IdempotencyConflict(ValueError):
    """A system got an idempotency key again with other arguments (nothing was done)."""


@runtime_checkable
class SystemOfRecord(Protocol):
    """What every system of record offers, whatever it does.

    `name` is how the workflow declaration and `DEALFLOW_SANDBOX_OUTAGE` refer to
    it (`pm`); `records_label` is its key in `dealflow records` (`projects`);
    `record_id` the field that names one of its records (`project_id`).
    """

    name: str
    records_label: str
    record_id: str

    def lookup(self, key: str) -> BaseModel | None:
        """What the call made with idempotency `key` produced, if the system has it."""
        ...

    def records(self, deal_id: str) -> list[Record]:
        """Everything the system holds for the deal."""
        ...


@runtime_checkable
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


@runtime_checkable
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


@runtime_checkable
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


@runtime_checkable
class ESign(Protocol):
    """The e-signature provider."""

    def send_envelope(
        self, deal_id: str, contract: Contract, signer_name: str, signer_email: str, *, key: str
    ) -> Envelope:
        """Send the contract to the signer."""
        ...

    def void_envelope(self, envelope_id: str, *, reason: str, key: str) -> Envelope:
        """Void an envelope that was sent, so it can no longer be signed (idempotent)."""
        ...

    def open_envelopes(self, deal_id: str) -> list[str]:
        """Ids of the deal's envelopes that were sent and are not voided."""
        ...

    def remind_signer(self, envelope_id: str, *, key: str) -> SignerReminder:
        """Send the envelope's signer a reminder (once per key)."""
        ...

    def reminder(self, key: str) -> SignerReminder | None:
        """The reminder sent with idempotency `key`, if any."""
        ...

    def lookup(self, key: str) -> Envelope | None:
        """The envelope sent, or voided, with idempotency `key`, if any."""
        ...

    def records(self, deal_id: str) -> list[Record]:
        """Envelopes of the deal."""
        ...


@runtime_checkable
class Billing(Protocol):
    """The billing system; it numbers invoices without gaps."""

    def issue_invoice(self, deal_id: str, draft: InvoiceDraft, *, key: str,
                      client: str | None = None) -> Invoice:
        """Number and send the invoice (to `client`, where the system keeps customers)."""
        ...

    def lookup(self, key: str) -> Invoice | None:
        """The invoice issued with idempotency `key`, if any."""
        ...

    def records(self, deal_id: str) -> list[Record]:
        """Invoices of the deal."""
        ...


@dataclass(frozen=True)
class Systems:
    """The systems of record one deal runs against, by name."""

    by_name: Mapping[str, SystemOfRecord] = field(default_factory=dict)
    rate_limits: Mapping[str, RateLimiter] = field(default_factory=dict)  # by system name

    @classmethod
    def of(cls, *systems: SystemOfRecord) -> Systems:
        """The given systems, each under its own `name`."""
        return cls({system.name: system for system in systems})

    def with_system(self, system: SystemOfRecord,
                    rate_limit: RateLimiter | None = None) -> Systems:
        """These systems plus (or with a replaced) `system`, with its provider's `rate_limit`."""
        limits = {name: limit for name, limit in self.rate_limits.items() if name != system.name}
        return Systems({**self.by_name, system.name: system},
                       limits | ({system.name: rate_limit} if rate_limit else {}))

    @property
    def names(self) -> tuple[str, ...]:
        """The systems' names, in the order they were given."""
        return tuple(self.by_name)

    def __getitem__(self, name: str) -> SystemOfRecord:
        """The system called `name`, or a KeyError naming the ones there are."""
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"no system of record {name!r} (configured: "
                           f"{', '.join(self.names) or 'none'})") from None

    def record_ids(self) -> dict[str, str]:
        """For each system's `records_label`, the field that names one of its records."""
        return {system.records_label: system.record_id for system in self.by_name.values()}

    def records(self, deal_id: str) -> dict[str, list[Record]]:
        """What each system holds for the deal, keyed as `dealflow records` shows it."""
        return {system.records_label: system.records(deal_id)
                for system in self.by_name.values()}
