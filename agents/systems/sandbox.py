"""The sandbox systems of record: real rows in Postgres, idempotent by key.

Each call first passes the fault injector (simulated outage or latency), then
inserts with `ON CONFLICT (idempotency_key) DO NOTHING`; a repeated key returns
the row written the first time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from agents.systems.base import Record, Systems
from agents.systems.faults import FaultInjector
from state.database import Pool
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

RequestLog = Callable[[Connection[DictRow], str, str], None]


class _SandboxSystem:
    system = ""

    def __init__(self, pool: Pool, faults: FaultInjector, log: RequestLog | None = None) -> None:
        self._pool = pool
        self._faults = faults
        self._log = log

    def _served(self, conn: Connection[DictRow], key: str) -> None:
        """Report a served request inside its own transaction (see `sandbox_systems`)."""
        if self._log is not None:
            self._log(conn, self.system, key)

    def _rows(self, sql: str, *params: Any) -> list[Record]:
        with self._pool.connection() as conn:
            return [dict(row) for row in conn.execute(sql, params).fetchall()]

    def _by_key(self, table: str, key: str) -> Record | None:
        rows = self._rows(f"SELECT * FROM {table} WHERE idempotency_key = %s", key)
        return rows[0] if rows else None


class SandboxCRM(_SandboxSystem):
    """Lead records."""

    system = "crm"

    def record_qualification(
        self, deal: DealInput, result: Qualification, *, key: str
    ) -> LeadRecord:
        """Record the score on the lead once per key; a repeated key returns the first."""
        self._faults.before_call(self.system)
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO sandbox_crm_leads (deal_id, idempotency_key, client, contact_email,"
                " score, qualified, icp_fit, reasons) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (deal.deal_id, key, deal.client, deal.lead.contact_email, result.score,
                 result.qualified, result.icp_fit, Jsonb(list(result.reasons))),
            )
            self._served(conn, key)
        found = self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> LeadRecord | None:
        """The lead update made with `key`."""
        row = self._by_key("sandbox_crm_leads", key)
        if row is None:
            return None
        return LeadRecord(record_id=row["id"], deal_id=row["deal_id"], score=row["score"],
                          qualified=row["qualified"], icp_fit=row["icp_fit"])

    def records(self, deal_id: str) -> list[Record]:
        """Lead records of the deal."""
        return self._rows("SELECT * FROM sandbox_crm_leads WHERE deal_id = %s ORDER BY id", deal_id)


class SandboxProjectTool(_SandboxSystem):
    """Projects and their tasks."""

    system = "pm"

    def create_project(
        self, deal_id: str, name: str, template: str, tasks: tuple[ProjectTask, ...], *, key: str
    ) -> Project:
        """Create the project with its tasks in one transaction, once per key."""
        self._faults.before_call(self.system)
        with self._pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "INSERT INTO sandbox_pm_projects (project_id, deal_id, idempotency_key, name,"
                " template) VALUES ('PRJ-' || lpad(nextval('sandbox_pm_project_seq')::text, 6,"
                " '0'), %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING"
                " RETURNING project_id",
                (deal_id, key, name, template),
            ).fetchone()
            if row is not None:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO sandbox_pm_tasks (project_id, position, title, owner_role,"
                        " due_in_days) VALUES (%s, %s, %s, %s, %s)",
                        [(row["project_id"], i, t.title, t.owner_role, t.due_in_days)
                         for i, t in enumerate(tasks, start=1)],
                    )
            self._served(conn, key)
        found = self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> Project | None:
        """The project created with `key`, with its tasks."""
        project = self._by_key("sandbox_pm_projects", key)
        if project is None:
            return None
        tasks = self._rows(
            "SELECT title, owner_role, due_in_days FROM sandbox_pm_tasks"
            " WHERE project_id = %s ORDER BY position", project["project_id"])
        return Project(
            project_id=project["project_id"], name=project["name"], template=project["template"],
            tasks=tuple(ProjectTask(**t) for t in tasks),
        )

    def records(self, deal_id: str) -> list[Record]:
        """Projects of the deal, each with its tasks."""
        projects = self._rows(
            "SELECT * FROM sandbox_pm_projects WHERE deal_id = %s ORDER BY created_at", deal_id)
        for project in projects:
            project["tasks"] = self._rows(
                "SELECT position, title, owner_role, due_in_days FROM sandbox_pm_tasks"
                " WHERE project_id = %s ORDER BY position", project["project_id"])
        return projects


class SandboxContracts(_SandboxSystem):
    """The contract repository (not subject to simulated outages)."""

    system = "contracts"

    def store_contract(
        self, deal_id: str, text: str, sha256: str, template_version: str, *, key: str
    ) -> Contract:
        """Store the rendered contract once per key; return the stored one."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO sandbox_contracts (contract_id, deal_id, idempotency_key,"
                " template_version, sha256, body) VALUES ('CTR-' ||"
                " lpad(nextval('sandbox_contract_seq')::text, 6, '0'), %s, %s, %s, %s, %s)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (deal_id, key, template_version, sha256, text),
            )
            self._served(conn, key)
        found = self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> Contract | None:
        """The contract stored with `key`."""
        row = self._by_key("sandbox_contracts", key)
        if row is None:
            return None
        return Contract(contract_id=row["contract_id"], template_version=row["template_version"],
                        sha256=row["sha256"], text=row["body"])

    def records(self, deal_id: str) -> list[Record]:
        """Contracts of the deal."""
        return self._rows(
            "SELECT * FROM sandbox_contracts WHERE deal_id = %s ORDER BY created_at", deal_id)


class SandboxESign(_SandboxSystem):
    """Signature envelopes."""

    system = "esign"

    def send_envelope(
        self, deal_id: str, contract: Contract, signer_name: str, signer_email: str, *, key: str
    ) -> Envelope:
        """Send the envelope once per key; return the one sent."""
        self._faults.before_call(self.system)
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO sandbox_esign_envelopes (envelope_id, deal_id, idempotency_key,"
                " contract_id, signer_name, signer_email) VALUES ('ENV-' ||"
                " lpad(nextval('sandbox_esign_envelope_seq')::text, 6, '0'), %s, %s, %s, %s, %s)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (deal_id, key, contract.contract_id, signer_name, signer_email),
            )
            self._served(conn, key)
        found = self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> Envelope | None:
        """The envelope sent with `key`."""
        row = self._by_key("sandbox_esign_envelopes", key)
        if row is None:
            return None
        return Envelope(envelope_id=row["envelope_id"], contract_id=row["contract_id"],
                        signer_name=row["signer_name"], signer_email=row["signer_email"],
                        sent_at=row["sent_at"])

    def records(self, deal_id: str) -> list[Record]:
        """Envelopes of the deal."""
        return self._rows(
            "SELECT * FROM sandbox_esign_envelopes WHERE deal_id = %s ORDER BY sent_at", deal_id)


class SandboxBilling(_SandboxSystem):
    """Invoices with gap-free numbers."""

    system = "billing"

    def issue_invoice(self, deal_id: str, draft: InvoiceDraft, *, key: str) -> Invoice:
        """Number and store the invoice once per key; the counter moves only on success."""
        self._faults.before_call(self.system)
        with self._pool.connection() as conn, conn.transaction():
            counter = conn.execute(
                "SELECT last_number FROM sandbox_billing_counter FOR UPDATE").fetchone()
            assert counter is not None
            existing = conn.execute(
                "SELECT 1 FROM sandbox_billing_invoices WHERE idempotency_key = %s", (key,)
            ).fetchone()
            if existing is None:
                seq = counter["last_number"] + 1
                conn.execute(
                    "INSERT INTO sandbox_billing_invoices (number, seq, deal_id, idempotency_key,"
                    " currency, lines, subtotal, tax_rate, tax, total, issued_on, due_on)"
                    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                    (f"INV-{seq:06d}", seq, deal_id, key, draft.currency,
                     Jsonb(json.loads(_lines_json(draft))), draft.subtotal, draft.tax_rate,
                     draft.tax, draft.total, draft.issued_on, draft.due_on),
                )
                conn.execute("UPDATE sandbox_billing_counter SET last_number = %s", (seq,))
            self._served(conn, key)
        found = self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> Invoice | None:
        """The invoice issued with `key`."""
        row = self._by_key("sandbox_billing_invoices", key)
        if row is None:
            return None
        return Invoice(
            number=row["number"], currency=row["currency"], lines=tuple(row["lines"]),
            subtotal=row["subtotal"], tax_rate=row["tax_rate"], tax=row["tax"],
            total=row["total"], issued_on=row["issued_on"], due_on=row["due_on"],
        )

    def records(self, deal_id: str) -> list[Record]:
        """Invoices of the deal."""
        return self._rows(
            "SELECT * FROM sandbox_billing_invoices WHERE deal_id = %s ORDER BY seq", deal_id)


def _lines_json(draft: InvoiceDraft) -> str:
    return json.dumps([line.model_dump(mode="json") for line in draft.lines])


def sandbox_systems(
    pool: Pool, faults: FaultInjector | None = None, log: RequestLog | None = None
) -> Systems:
    """The five sandbox systems on one pool, sharing one fault injector.

    `log(conn, system, key)` is called for every mutating request a system
    serves, inside the transaction that serves it: a request is logged if and
    only if it took effect (tests count real calls with it).
    """
    faults = faults or FaultInjector()
    return Systems(
        crm=SandboxCRM(pool, faults, log),
        pm=SandboxProjectTool(pool, faults, log),
        contracts=SandboxContracts(pool, faults, log),
        esign=SandboxESign(pool, faults, log),
        billing=SandboxBilling(pool, faults, log),
    )
