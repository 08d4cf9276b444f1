"""Waits and who ended them: one row per interrupt that waits for the outside world.

A wait (a review, a signature) opens when its node first stops: the row, its
deadlines (due at the opening time plus each delay, on the database's clock),
an audit entry and the announcement go in one fenced statement
(`dealflow_open_wait`), and opening it again (the node re-runs on resume)
changes nothing. It is keyed by the thread and the interrupted task's id, so a
fork that waits again opens a new one.

Whatever ends a wait (a person's decision, a signature event, an expiry)
`claim`s it: the first claim stores its resolution and cancels the wait's
scheduled deadlines in the same transaction; a later claim with another
resolution loses, is audited as refused, and its caller is told who won.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from state.audit import AuditTrail, Origin
from state.claimed_waits import ClaimedWaits
from state.database import Pool
from state.deal_state import OPEN_STATUSES
from state.leases import Leases
from state.outbox import Notice, Outbox
from state.statements import call_alone
from state.step_rows import fenced_statement

EXPIRED = "expired"  # the key of an expiry's resolution: {"expired": {"deadline": ...}}
WAITING = [status for status in OPEN_STATUSES if status != "running"]  # a thread that waits


@dataclass(frozen=True)
class Wait:
    """A wait as stored."""

    thread_id: str
    wait_key: str
    deal_id: str
    wait: str
    node: str
    opened_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: dict[str, Any] | None

    @property
    def expired(self) -> bool:
        """Whether an expiry ended it."""
        return bool(self.resolution and EXPIRED in self.resolution)


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: whether it won, and the wait with the winning resolution."""

    won: bool
    wait: Wait


class WaitNotFound(KeyError):
    """A claim named a wait the thread never stored."""


_WAIT_COLUMNS = ("thread_id, wait_key, deal_id, wait, node, opened_at, resolved_at,"
                 " resolved_by, resolution")
_WAIT_FIELDS = _WAIT_COLUMNS.split(", ")
# the claim, the winner's audit and its deadlines settled: one statement (migration 0016)
_CLAIM = "SELECT * FROM dealflow_claim_wait(%s, %s, %s, %s, %s, %s, %s, %s, %s)"


# the fence, the wait (once), its deadlines, its audit entry and its notice: one statement
# (migration 0017), which the rows the step holds ride with (`state.statements.call_after`)
_OPEN = ("dealflow_open_wait({after}, %s, %s, %s, %s, %s, %s, %s, %s::text[], %s::text[],"
         " %s::interval[], %s, %s, %s, %s, %s, %s)")


class WaitBook:
    """Reads and writes `dealflow_waits` and the deadlines it schedules and cancels."""

    def __init__(self, pool: Pool, audit: AuditTrail, outbox: Outbox, leases: Leases) -> None:
        """Use `pool`; audit in `audit`; announce through `outbox`; fence with `leases`."""
        self._pool = pool
        self._audit = audit
        self._outbox = outbox
        self._leases = leases
        self._claimed = ClaimedWaits()

    def open(self, origin: Origin, *, wait: str, key: str,
             deadlines: Sequence[tuple[str, str, timedelta]], notice: Notice | None,
             detail: dict[str, Any] | None = None) -> bool:
        """Store the wait (once) with its deadlines `(name, action, delay)` and announce it.

        True if it opened now; False if it was open already (the step ran again).
        The notice's `due_at` is the last deadline's.
        """
        assert origin.thread_id and origin.step
        names, actions, delays = (([*column] for column in zip(*deadlines, strict=True))
                                  if deadlines else ([], [], []))
        notice_key = f"{origin.thread_id}:{key}:{notice.event}" if notice else None
        message = (Jsonb(self._outbox.message(notice_key, origin, notice))
                   if notice and notice_key else None)
        (row,) = fenced_statement(self._pool, _OPEN, (
            origin.thread_id, self._leases.token(origin.thread_id), key, origin.deal_id, wait,
            origin.step, Jsonb(detail or {}), names, actions, delays, origin.step,
            origin.agent, origin.checkpoint_id, notice_key,
            notice.event if notice else None, message), send=call_alone)
        return bool(row["opened"])

    def claim(self, origin: Origin, key: str, resolution: dict[str, Any], by: str, *,
              deadline_id: int | None = None, for_resume: bool = False) -> Claim:
        """End the wait with `resolution` unless something ended it first.

        Winning cancels the wait's scheduled deadlines (an expiry's own deadline,
        `deadline_id`, is marked fired). Losing with another resolution is audited
        as `wait.refused`; the same resolution again (a retried job) is not a loss.
        `for_resume`: the caller resumes the thread next, under the lease it holds;
        the claim is remembered for the resumed node (`claimed_for`).
        """
        assert origin.thread_id
        with self._pool.connection() as conn:
            row = conn.execute(_CLAIM, (
                origin.thread_id, key, Jsonb(resolution), by, deadline_id, origin.deal_id,
                origin.step, origin.agent, origin.checkpoint_id)).fetchone()
        if row is None:
            raise WaitNotFound(f"thread {origin.thread_id} has no wait {key}")
        found = Wait(**{name: row[f"o_{name}"] for name in _WAIT_FIELDS})
        if for_resume and found.resolution == resolution:
            self._claimed.remember(origin.thread_id, key, self._leases.token(origin.thread_id),
                                   found)
        if row["o_won"]:
            return Claim(True, found)
        if found.resolution != resolution:
            self._audit.append(origin, "wait.refused", actor=by, reason=(
                f"the wait already ended ({found.resolved_by}, "
                f"{found.resolved_at:%Y-%m-%d %H:%M:%S %Z})" if found.resolved_at else None),
                detail={"wait_key": key, "refused": resolution, "winner": found.resolution})
        return Claim(False, found)

    def claimed_for(self, origin: Origin, key: str) -> Wait | None:
        """The wait, if this process claimed it for the run it drives now (and forget it).

        Such a wait is open and ended with the resolution the run resumes with:
        the resumed node neither opens it nor claims it again.
        """
        thread = str(origin.thread_id)
        return self._claimed.take(thread, key, self._leases.token(thread))

    def get(self, thread_id: str, key: str) -> Wait | None:
        """The wait `key` of the thread, if it was opened."""
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT {_WAIT_COLUMNS} FROM dealflow_waits WHERE thread_id"
                               " = %s AND wait_key = %s", (thread_id, key)).fetchone()
        return Wait(**row) if row else None

    def unapplied(self, older_than_seconds: float) -> list[str]:
        """Threads still listed as waiting whose last wait was claimed that long ago.

        The claim's job was lost (an API node died between claiming and queueing):
        the sweep has them applied.
        """
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT w.thread_id FROM dealflow_waits w JOIN dealflow_deals d"
                " ON d.thread_id = w.thread_id WHERE d.status = ANY(%s)"
                " AND w.resolved_at < clock_timestamp()"
                " - make_interval(secs => %s) AND NOT EXISTS (SELECT 1 FROM dealflow_waits"
                " later WHERE later.thread_id = w.thread_id AND later.opened_at > w.opened_at)",
                (WAITING, older_than_seconds)).fetchall()
        return [row["thread_id"] for row in rows]

    def for_thread(self, thread_id: str) -> list[Wait]:
        """The thread's waits, in the order they opened."""
        with self._pool.connection() as conn:
            rows = conn.execute(f"SELECT {_WAIT_COLUMNS} FROM dealflow_waits WHERE thread_id"
                                " = %s ORDER BY opened_at", (thread_id,)).fetchall()
        return [Wait(**row) for row in rows]

    def last_ended(self, thread_id: str, wait: str) -> Wait | None:
        """The thread's `wait` (`review`) that ended last, if any."""
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT {_WAIT_COLUMNS} FROM dealflow_waits WHERE thread_id"
                               " = %s AND wait = %s AND resolved_at IS NOT NULL"
                               " ORDER BY resolved_at DESC LIMIT 1", (thread_id, wait)).fetchone()
        return Wait(**row) if row else None

    def open_wait(self, thread_id: str) -> Wait | None:
        """The thread's wait that is open now, if any."""
        with self._pool.connection() as conn:
            row = conn.execute(f"SELECT {_WAIT_COLUMNS} FROM dealflow_waits WHERE thread_id"
                               " = %s AND resolved_at IS NULL ORDER BY opened_at DESC LIMIT 1",
                               (thread_id,)).fetchone()
        return Wait(**row) if row else None
