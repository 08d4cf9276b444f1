"""Deadlines as stored: what is due when, which job fires it, and how it ended.

`state.waits` schedules a wait's deadlines when it opens and cancels them when
it ends. This module is the rest: reading them (for `status`, `threads
--overdue`, the trace), handing the ones not yet queued to the job queue, and
recording that one fired (with its audit entry and notification, in one
transaction, once) or was cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from state.audit import AuditTrail, Origin
from state.database import Pool, fetch_all
from state.outbox import Notice, Outbox
from state.transactions import write_transaction


@dataclass(frozen=True)
class Deadline:
    """One deadline of one wait."""

    id: int
    thread_id: str
    wait_key: str
    deal_id: str
    name: str
    action: str
    due_at: datetime
    status: str
    job_id: int | None
    settled_at: datetime | None
    note: str | None
    node: str | None = None  # the step whose wait it belongs to (`dealflow_waits.node`)


_COLUMNS = ("id, thread_id, wait_key, deal_id, name, action, due_at, status, job_id,"
            " settled_at, note, (SELECT w.node FROM dealflow_waits w WHERE w.thread_id ="
            " d.thread_id AND w.wait_key = d.wait_key) AS node")


class DeadlineBook:
    """Reads and settles `dealflow_deadlines`."""

    def __init__(self, pool: Pool, audit: AuditTrail, outbox: Outbox) -> None:
        """Use `pool`; audit in `audit`; notify through `outbox`."""
        self._pool = pool
        self._audit = audit
        self._outbox = outbox

    def get(self, deadline_id: int) -> Deadline | None:
        """The deadline with this id."""
        found = self._select("WHERE id = %s", deadline_id)
        return found[0] if found else None

    def for_thread(self, thread_id: str, *, scheduled_only: bool = False) -> list[Deadline]:
        """The thread's deadlines by due time (only those still to fire, if asked)."""
        where = "WHERE thread_id = %s" + (" AND status = 'scheduled'" if scheduled_only else "")
        return self._select(where + " ORDER BY due_at, id", thread_id)

    def unqueued(self, limit: int = 200) -> list[Deadline]:
        """Scheduled deadlines that no job fires yet, oldest first."""
        return self._select("WHERE status = 'scheduled' AND job_id IS NULL ORDER BY id"
                            " LIMIT %s", limit)

    def queued_all(self, jobs: list[tuple[int, int | None]]) -> None:
        """Remember the jobs that fire the deadlines, (deadline id, job id) each: one statement."""
        if not jobs:
            return
        with self._pool.connection() as conn:
            conn.execute("UPDATE dealflow_deadlines d SET job_id = q.job_id"
                         " FROM unnest(%s::bigint[], %s::bigint[]) AS q(id, job_id)"
                         " WHERE d.id = q.id", ([d for d, _ in jobs], [j for _, j in jobs]))

    def fired(self, origin: Origin, deadline: Deadline, notice: Notice | None,
              detail: dict[str, object] | None = None) -> None:
        """Record that the deadline fired: status, audit entry and notification, once."""
        with write_transaction(self._pool) as conn:
            conn.execute("UPDATE dealflow_deadlines SET status = 'fired', settled_at ="
                         " clock_timestamp(), note = 'fired' WHERE id = %s"
                         " AND status = 'scheduled'", (deadline.id,))
            self._audit.append(origin, "deadline.fired", actor=f"deadline:{deadline.name}",
                               detail={"deadline": deadline.name, "due_at":
                                       deadline.due_at.isoformat(), **(detail or {}),
                                       **({"notified": notice.to} if notice else {})},
                               dedupe_key=f"deadline:{deadline.id}:fired", conn=conn)
            if notice is not None:
                self._outbox.add(conn, f"deadline-{deadline.id}", origin, notice)

    def cancel(self, origin: Origin, deadline: Deadline, note: str) -> None:
        """Cancel a deadline that must not fire (its wait is over), with the reason."""
        with write_transaction(self._pool) as conn:
            cancelled = conn.execute(
                "UPDATE dealflow_deadlines SET status = 'cancelled', settled_at ="
                " clock_timestamp(), note = %s WHERE id = %s AND status = 'scheduled'"
                " RETURNING id", (note[:500], deadline.id)).fetchone()
            if cancelled is not None:
                self._audit.append(origin, "deadline.cancelled", reason=note,
                                   detail={"deadlines": [deadline.name]}, conn=conn)

    def _select(self, where: str, *params: object) -> list[Deadline]:
        rows = fetch_all(self._pool, f"SELECT {_COLUMNS} FROM dealflow_deadlines d {where}", params)
        return [Deadline(**row) for row in rows]
