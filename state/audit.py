"""The audit trail: who did what, in what order, for every deal.

Entries are appended (the table refuses UPDATE and DELETE), always by the
database function `dealflow_audit_v1` (`state/functions.sql`). Inside a step an
entry goes into the step's unit of work (`work=`, `state.work`) and is written
with its checkpoint; a caller acting in a transaction of its own passes its
connection so the entry commits, or not, with the act it records.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from state.database import Pool, fetch_all
from state.rows import Row, Rows, flush_params
from state.work import StepWork


@dataclass(frozen=True)
class Origin:
    """Where an act comes from: the deal, the agent, and the graph position."""

    deal_id: str
    agent: str
    step: str | None = None
    thread_id: str | None = None
    checkpoint_id: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One appended audit record."""

    id: int
    at: datetime
    deal_id: str
    thread_id: str | None
    step: str | None
    agent: str
    action: str
    key: str | None
    checkpoint_id: str | None
    actor: str | None
    reason: str | None
    detail: dict[str, Any]


_APPEND = "SELECT dealflow_audit_v1(%(audit)s)"  # a JSON array of entries (`Rows.audit`)


class AuditTrail:
    """Append and query `dealflow_audit`."""

    def __init__(self, pool: Pool) -> None:
        """Use `pool` for appends made outside a caller's transaction, and for queries."""
        self._pool = pool

    def append(self, origin: Origin, action: str, *, key: str | None = None,
               actor: str | None = None, reason: str | None = None,
               detail: dict[str, Any] | None = None, dedupe_key: str | None = None,
               conn: Connection[DictRow] | None = None, work: StepWork | None = None) -> None:
        """Append one entry; with `dedupe_key`, a second append of the same act is dropped.

        With `work`, into the step's unit of work; with `conn`, in the caller's
        transaction; else at once.
        """
        row = self.row(origin, action, key=key, actor=actor, reason=reason, detail=detail,
                       dedupe_key=dedupe_key)
        if work is not None:
            work.rows.audit.append(row)
            return
        with nullcontext(conn) if conn is not None else self._pool.connection() as target:
            target.execute(_APPEND, flush_params(Rows(audit=[row]), None, None))

    @staticmethod
    def row(origin: Origin, action: str, *, key: str | None = None, actor: str | None = None,
            reason: str | None = None, detail: dict[str, Any] | None = None,
            dedupe_key: str | None = None) -> Row:
        """One entry as a row (`state.rows.COLUMNS["audit"]`)."""
        return (origin.deal_id, origin.thread_id, origin.step, origin.agent, action, key,
                origin.checkpoint_id, actor, reason, Jsonb(detail or {}), dedupe_key)

    def entries(self, deal_id: str, *, agent: str | None = None,
                key: str | None = None) -> list[AuditEntry]:
        """A deal's entries in the order they were appended, optionally filtered."""
        rows = fetch_all(
            self._pool, "SELECT id, at, deal_id, thread_id, step, agent, action, key,"
            " checkpoint_id, actor, reason, detail FROM dealflow_audit WHERE deal_id = %s"
            " AND (%s::text IS NULL OR agent = %s) AND (%s::text IS NULL OR key = %s)"
            " ORDER BY id", (deal_id, agent, agent, key, key))
        return [AuditEntry(**row) for row in rows]
