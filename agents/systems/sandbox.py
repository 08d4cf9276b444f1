"""The sandbox systems of record: real rows in Postgres, idempotent by key.

Each call first passes the fault injector (simulated outage or latency), then
inserts with `ON CONFLICT (idempotency_key) DO NOTHING`; a repeated key returns
the row written the first time. A repeated key with other arguments is refused
(`IdempotencyConflict`), as a payment provider refuses a reused key.
`agents.systems.sandbox_base.SandboxSystem` is the base to build another on.
"""

from __future__ import annotations

import json

from psycopg.types.json import Jsonb

from agents.systems.base import Record, Systems
from agents.systems.faults import FaultInjector
from agents.systems.sandbox_base import RequestLog, SandboxSystem
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
    SignerReminder,
)


class SandboxCRM(SandboxSystem):
    """Lead records."""

    name, records_label, record_id = "crm", "crm", "id"

    def record_qualification(
        self, deal: DealInput, result: Qualification, *, key: str
    ) -> LeadRecord:
        """Record the score on the lead once per key; a repeated key returns the first."""
        self.before_call()
        row = self.serve(
            "made AS (INSERT INTO sandbox_crm_leads (deal_id, idempotency_key, client,"
            " contact_email, score, qualified, icp_fit, reasons) VALUES"
            " (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (idempotency_key) DO NOTHING RETURNING *)",
            (deal.deal_id, key, deal.client, deal.lead.contact_email, result.score,
             result.qualified, result.icp_fit, Jsonb(list(result.reasons))),
            key=key, request={"deal_id": deal.deal_id, "result": result.model_dump()})
        found = _lead(row) if row is not None else self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> LeadRecord | None:
        """The lead update made with `key`."""
        row = self._by_key("sandbox_crm_leads", key)
        return _lead(row) if row is not None else None

    def records(self, deal_id: str) -> list[Record]:
        """Lead records of the deal."""
        return self._rows("SELECT * FROM sandbox_crm_leads WHERE deal_id = %s ORDER BY id", deal_id)


# A project and its tasks (`SandboxSystem.serve`); nothing if the key created one before.
_CREATE_PROJECT = (
    "made AS (INSERT INTO sandbox_pm_projects (project_id, deal_id, idempotency_key,"
    " name, template) VALUES ('PRJ-' || lpad(nextval('sandbox_pm_project_seq')::text, 6, '0'),"
    " %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING RETURNING project_id),"
    " tasks AS (INSERT INTO sandbox_pm_tasks (project_id, position, title, owner_role,"
    " due_in_days) SELECT made.project_id, task.* FROM made,"
    " unnest(%s::int[], %s::text[], %s::text[], %s::int[]) AS task)")
_PROJECT_WITH_TASKS = (
    "SELECT p.project_id, p.name, p.template, coalesce((SELECT json_agg(json_build_object("
    "'title', t.title, 'owner_role', t.owner_role, 'due_in_days', t.due_in_days)"
    " ORDER BY t.position) FROM sandbox_pm_tasks t WHERE t.project_id = p.project_id),"
    " '[]') AS tasks FROM sandbox_pm_projects p WHERE p.idempotency_key = %s")


class SandboxProjectTool(SandboxSystem):
    """Projects and their tasks."""

    name, records_label, record_id = "pm", "projects", "project_id"

    def create_project(
        self, deal_id: str, name: str, template: str, tasks: tuple[ProjectTask, ...], *, key: str
    ) -> Project:
        """Create the project with its tasks in one transaction, once per key."""
        self.before_call()
        row = self.serve(_CREATE_PROJECT, (
            deal_id, key, name, template, list(range(1, len(tasks) + 1)),
            [t.title for t in tasks], [t.owner_role for t in tasks],
            [t.due_in_days for t in tasks]),
            key=key, request={"deal_id": deal_id, "name": name, "template": template,
                              "tasks": [t.model_dump() for t in tasks]})
        found = Project(project_id=row["project_id"], name=name, template=template,
                        tasks=tuple(tasks)) if row is not None else self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> Project | None:
        """The project created with `key`, with its tasks."""
        rows = self._rows(_PROJECT_WITH_TASKS, key)
        if not rows:
            return None
        project = rows[0]
        return Project(
            project_id=project["project_id"], name=project["name"], template=project["template"],
            tasks=tuple(ProjectTask(**t) for t in project["tasks"]),
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


class SandboxContracts(SandboxSystem):
    """The contract repository."""

    name, records_label, record_id = "contracts", "contracts", "contract_id"

    def store_contract(
        self, deal_id: str, text: str, sha256: str, template_version: str, *, key: str
    ) -> Contract:
        """Store the rendered contract once per key; return the stored one."""
        self.before_call()
        row = self.serve(
            "made AS (INSERT INTO sandbox_contracts (contract_id, deal_id, idempotency_key,"
            " template_version, sha256, body) VALUES ('CTR-' ||"
            " lpad(nextval('sandbox_contract_seq')::text, 6, '0'), %s, %s, %s, %s, %s)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *)",
            (deal_id, key, template_version, sha256, text),
            key=key, request={"deal_id": deal_id, "sha256": sha256,
                              "template_version": template_version})
        found = _contract(row) if row is not None else self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> Contract | None:
        """The contract stored with `key`."""
        row = self._by_key("sandbox_contracts", key)
        return _contract(row) if row is not None else None

    def records(self, deal_id: str) -> list[Record]:
        """Contracts of the deal."""
        return self._rows(
            "SELECT * FROM sandbox_contracts WHERE deal_id = %s ORDER BY created_at", deal_id)


class SandboxESign(SandboxSystem):
    """Signature envelopes."""

    name, records_label, record_id = "esign", "envelopes", "envelope_id"

    def send_envelope(
        self, deal_id: str, contract: Contract, signer_name: str, signer_email: str, *, key: str
    ) -> Envelope:
        """Send the envelope once per key; return the one sent."""
        self.before_call()
        row = self.serve(
            "made AS (INSERT INTO sandbox_esign_envelopes (envelope_id, deal_id,"
            " idempotency_key, contract_id, signer_name, signer_email) VALUES ('ENV-' ||"
            " lpad(nextval('sandbox_esign_envelope_seq')::text, 6, '0'), %s, %s, %s, %s, %s)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *)",
            (deal_id, key, contract.contract_id, signer_name, signer_email),
            key=key, request={"deal_id": deal_id, "contract_id": contract.contract_id,
                              "signer_name": signer_name, "signer_email": signer_email})
        found = _envelope(row) if row is not None else self.lookup(key)
        assert found is not None
        return found

    def void_envelope(self, envelope_id: str, *, reason: str, key: str) -> Envelope:
        """Void a sent envelope once; voiding it again returns it as it is."""
        self.before_call()
        with self.serving() as conn:
            conn.execute(
                "UPDATE sandbox_esign_envelopes SET status = 'voided', void_key = %s,"
                " void_reason = %s, voided_at = now() WHERE envelope_id = %s"
                " AND status = 'sent'", (key, reason, envelope_id))
            self.accept(conn, key, {"envelope_id": envelope_id, "reason": reason})
            found = self._rows("SELECT * FROM sandbox_esign_envelopes WHERE envelope_id = %s",
                               envelope_id, conn=conn)
        if not found:
            raise KeyError(f"esign: no envelope {envelope_id}")
        return _envelope(found[0])

    def open_envelopes(self, deal_id: str) -> list[str]:
        """The deal's envelopes that are sent and not voided."""
        return [row["envelope_id"] for row in self._rows(
            "SELECT envelope_id FROM sandbox_esign_envelopes WHERE deal_id = %s"
            " AND status = 'sent' ORDER BY sent_at", deal_id)]

    def remind_signer(self, envelope_id: str, *, key: str) -> SignerReminder:
        """Remind the signer of a sent envelope once per key; return the reminder."""
        self.before_call()
        with self.serving() as conn:
            conn.execute(
                "INSERT INTO sandbox_esign_reminders (envelope_id, deal_id, idempotency_key)"
                " SELECT envelope_id, deal_id, %s FROM sandbox_esign_envelopes"
                " WHERE envelope_id = %s ON CONFLICT (idempotency_key) DO NOTHING",
                (key, envelope_id))
            self.accept(conn, key, {"envelope_id": envelope_id})
            found = self._by_key("sandbox_esign_reminders", key, conn=conn)
        if found is None:
            raise KeyError(f"esign: no envelope {envelope_id}")
        return _reminder(found)

    def reminder(self, key: str) -> SignerReminder | None:
        """The reminder sent with `key`."""
        row = self._by_key("sandbox_esign_reminders", key)
        return _reminder(row) if row else None

    def reminders(self, deal_id: str) -> list[Record]:
        """Reminders sent to the deal's signers."""
        return self._rows("SELECT * FROM sandbox_esign_reminders WHERE deal_id = %s"
                          " ORDER BY reminder_id", deal_id)

    def lookup(self, key: str) -> Envelope | None:
        """The envelope sent, or voided, with `key`."""
        rows = self._rows("SELECT * FROM sandbox_esign_envelopes WHERE idempotency_key = %s"
                          " OR void_key = %s", key, key)
        return _envelope(rows[0]) if rows else None

    def records(self, deal_id: str) -> list[Record]:
        """Envelopes of the deal, each with the reminders its signer was sent."""
        envelopes = self._rows(
            "SELECT * FROM sandbox_esign_envelopes WHERE deal_id = %s ORDER BY sent_at", deal_id)
        reminders = self.reminders(deal_id)
        for envelope in envelopes:
            envelope["reminders"] = [r for r in reminders
                                     if r["envelope_id"] == envelope["envelope_id"]]
        return envelopes


# Number and store an invoice, and move the counter (`SandboxSystem.serve`); nothing
# (and the counter unmoved) if the key issued one before. The counter's row lock
# orders concurrent issues, so numbers have no gaps.
_ISSUE_INVOICE = (
    "counter AS (SELECT last_number + 1 AS seq FROM sandbox_billing_counter FOR UPDATE),"
    " made AS (INSERT INTO sandbox_billing_invoices (number, seq, deal_id, idempotency_key,"
    " currency, lines, subtotal, tax_rate, tax, total, issued_on, due_on)"
    " SELECT 'INV-' || lpad(seq::text, greatest(6, length(seq::text)), '0'), seq,"
    " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s FROM counter"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *),"
    " moved AS (UPDATE sandbox_billing_counter SET last_number = made.seq FROM made)")


class SandboxBilling(SandboxSystem):
    """Invoices with gap-free numbers."""

    name, records_label, record_id = "billing", "invoices", "number"

    def issue_invoice(self, deal_id: str, draft: InvoiceDraft, *, key: str,
                      client: str | None = None) -> Invoice:
        """Number and store the invoice once per key; the counter moves only on success."""
        self.before_call()
        row = self.serve(_ISSUE_INVOICE, (
            deal_id, key, draft.currency, Jsonb(json.loads(_lines_json(draft))),
            draft.subtotal, draft.tax_rate, draft.tax, draft.total, draft.issued_on,
            draft.due_on), key=key,
            request={"deal_id": deal_id, "draft": draft.model_dump(mode="json")})
        found = _invoice(row) if row is not None else self.lookup(key)
        assert found is not None
        return found

    def lookup(self, key: str) -> Invoice | None:
        """The invoice issued with `key`."""
        row = self._by_key("sandbox_billing_invoices", key)
        return _invoice(row) if row is not None else None

    def records(self, deal_id: str) -> list[Record]:
        """Invoices of the deal."""
        return self._rows(
            "SELECT * FROM sandbox_billing_invoices WHERE deal_id = %s ORDER BY seq", deal_id)


def _lead(row: Record) -> LeadRecord:
    return LeadRecord(record_id=row["id"], deal_id=row["deal_id"], score=row["score"],
                      qualified=row["qualified"], icp_fit=row["icp_fit"])


def _contract(row: Record) -> Contract:
    return Contract(contract_id=row["contract_id"], template_version=row["template_version"],
                    sha256=row["sha256"], text=row["body"])


def _invoice(row: Record) -> Invoice:
    return Invoice(
        number=row["number"], currency=row["currency"], lines=tuple(row["lines"]),
        subtotal=row["subtotal"], tax_rate=row["tax_rate"], tax=row["tax"],
        total=row["total"], issued_on=row["issued_on"], due_on=row["due_on"],
    )


def _envelope(row: Record) -> Envelope:
    return Envelope(envelope_id=row["envelope_id"], contract_id=row["contract_id"],
                    signer_name=row["signer_name"], signer_email=row["signer_email"],
                    sent_at=row["sent_at"])


def _reminder(row: Record) -> SignerReminder:
    return SignerReminder(reminder_id=f"REM-{row['reminder_id']:06d}",
                          envelope_id=row["envelope_id"], sent_at=row["sent_at"])


def _lines_json(draft: InvoiceDraft) -> str:
    return json.dumps([line.model_dump(mode="json") for line in draft.lines])


def sandbox_systems(
    pool: Pool, faults: FaultInjector | None = None, log: RequestLog | None = None
) -> Systems:
    """The five sandbox systems on one pool, sharing one fault injector.

    `log(system, key)` gives the statement that logs a mutating request a
    system serves; it runs in the statement or transaction that serves it: a
    request is logged if and only if it took effect (tests count real calls).
    """
    faults = faults or FaultInjector()
    return Systems.of(*(kind(pool, faults, log) for kind in (
        SandboxCRM, SandboxProjectTool, SandboxContracts, SandboxESign, SandboxBilling)))
