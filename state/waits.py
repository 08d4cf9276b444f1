"""Waits and who ended them: one row per interrupt that waits for the outside world.

A wait (a review, a signature) opens when its node first stops: the row, its
deadlines (due at the opening time plus each delay, on the database's clock),
an audit entry and the announcement go in one fenced statement
(`dealflow_open_wait_v1`, state/functions.sql), and opening it again (the node re-runs on resume)
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
from state.database import fetch_all
from state.models import OPEN_STATUSES
from state.outbox import Notice, Outbox
from state.pending import PendingWrites, after_held
from state.work import StepWork

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
# The claim, the winner's audit and its deadlines settled: one statement.
_CLAIM = """SELECT * FROM dealflow_claim_wait_v1(p_thread => %(thread)s, p_key => %(key)s,
    p_resolution => %(resolution)s, p_by => %(by)s, p_deadline => %(deadline)s,
    p_deal => %(deal)s, p_step => %(step)s, p_agent => %(agent)s,
    p_checkpoint => %(checkpoint)s)"""
# The fence, the wait (once), its deadlines, its audit entry and its notice: one statement.
_OPEN_CALL = """dealflow_open_wait_v1(p_thread => %(thread)s, p_token => %(token)s,
    p_key => %(key)s, p_deal => %(deal)s, p_wait => %(wait)s, p_node => %(node)s,
    p_detail => %(detail)s, p_names => %(names)s::text[], p_actions => %(actions)s::text[],
    p_delays => %(delays)s::interval[], p_agent => %(agent)s, p_checkpoint => %(checkpoint)s,
    p_notice_key => %(notice_key)s, p_event => %(event)s, p_message => %(message)s,
    p_before => %(audit)s)"""
_OPEN = f"SELECT * FROM {_OPEN_CALL}"
_OPEN_AFTER_HELD = after_held(_OPEN_CALL)  # what the thread holds first, in the same statement


class WaitBook:
    """Reads and writes `dealflow_waits` and the deadlines it schedules and cancels."""

    def __init__(self, pending: PendingWrites, audit: AuditTrail, outbox: Outbox) -> None:
        """Write through `pending` (fenced by its leases); audit and announce."""
        self._pending = pending
        self._pool = pending.pool
        self._audit = audit
        self._outbox = outbox

    def open(self, origin: Origin, *, wait: str, key: str,
             deadlines: Sequence[tuple[str, str, timedelta]], notice: Notice | None,
             detail: dict[str, Any] | None = None, work: StepWork | None = None) -> bool:
        """Store the wait (once) with its deadlines `(name, action, delay)` and announce it.

        True if it opened now; False if it was open already (the step ran again).
        The notice's `due_at` is the last deadline's. `work`: the step's unit of
        work, written first.
        """
        assert origin.thread_id and origin.step
        names, actions, delays = (([*column] for column in zip(*deadlines, strict=True))
                                  if deadlines else ([], [], []))
        notice_key = f"{origin.thread_id}:{key}:{notice.event}" if notice else None
        message = (Jsonb(self._outbox.message(notice_key, origin, notice))
                   if notice and notice_key else None)
        params = {
            "thread": origin.thread_id, "token": self._pending.leases.token(origin.thread_id),
            "key": key, "deal": origin.deal_id, "wait": wait, "node": origin.step,
            "detail": Jsonb(detail or {}), "names": names, "actions": actions, "delays": delays,
            "agent": origin.agent, "checkpoint": origin.checkpoint_id, "notice_key": notice_key,
            "event": notice.event if notice else None, "message": message}
        (row,) = self._pending.act(origin.thread_id, work.rows if work else None, _OPEN,
                                   _OPEN_AFTER_HELD, params)
        return bool(row["opened"])

    def claim(self, origin: Origin, key: str, resolution: dict[str, Any], by: str, *,
              deadline_id: int | None = None) -> Claim:
        """End the wait with `resolution` unless something ended it first.

        Winning cancels the wait's scheduled deadlines (an expiry's own deadline,
        `deadline_id`, is marked fired). Losing with another resolution is audited
        as `wait.refused`; the same resolution again (a retried job) is not a loss.
        """
        assert origin.thread_id
        with self._pool.connection() as conn:
            row = conn.execute(_CLAIM, {
                "thread": origin.thread_id, "key": key, "resolution": Jsonb(resolution),
                "by": by, "deadline": deadline_id, "deal": origin.deal_id, "step": origin.step,
                "agent": origin.agent, "checkpoint": origin.checkpoint_id}).fetchone()
        if row is None:
            raise WaitNotFound(f"thread {origin.thread_id} has no wait {key}")
        found = Wait(**{name: row[f"o_{name}"] for name in _WAIT_COLUMNS.split(", ")})
        if row["o_won"]:
            return Claim(True, found)
        if found.resolution != resolution:
            self._audit.append(origin, "wait.refused", actor=by, reason=(
                f"the wait already ended ({found.resolved_by}, "
                f"{found.resolved_at:%Y-%m-%d %H:%M:%S %Z})" if found.resolved_at else None),
                detail={"wait_key": key, "refused": resolution, "winner": found.resolution})
        return Claim(False, found)

    def get(self, thread_id: str, key: str) -> Wait | None:
        """The wait `key` of the thread, if it was opened."""
        return self._first("AND wait_key = %s", thread_id, key)

    def unapplied(self, older_than_seconds: float) -> list[str]:
        """Threads still listed as waiting whose last wait was claimed that long ago.

        The claim's job was lost (an API node died between claiming and queueing):
        the sweep has them applied.
        """
        rows = fetch_all(
            self._pool, "SELECT w.thread_id FROM dealflow_waits w JOIN dealflow_deals d"
            " ON d.thread_id = w.thread_id WHERE d.status = ANY(%s)"
            " AND w.resolved_at < clock_timestamp()"
            " - make_interval(secs => %s) AND NOT EXISTS (SELECT 1 FROM dealflow_waits"
            " later WHERE later.thread_id = w.thread_id AND later.opened_at > w.opened_at)",
            (WAITING, older_than_seconds))
        return [row["thread_id"] for row in rows]

    def for_thread(self, thread_id: str) -> list[Wait]:
        """The thread's waits, in the order they opened."""
        return self._select("ORDER BY opened_at", thread_id)

    def last_ended(self, thread_id: str, wait: str) -> Wait | None:
        """The thread's `wait` (`review`) that ended last, if any."""
        return self._first("AND wait = %s AND resolved_at IS NOT NULL"
                           " ORDER BY resolved_at DESC LIMIT 1", thread_id, wait)

    def open_wait(self, thread_id: str) -> Wait | None:
        """The thread's wait that is open now, if any."""
        return self._first("AND resolved_at IS NULL ORDER BY opened_at DESC LIMIT 1", thread_id)

    def _select(self, rest: str, thread_id: str, *params: object) -> list[Wait]:
        """The thread's waits that `rest` (the SQL after `WHERE thread_id = %s`) selects."""
        rows = fetch_all(self._pool, f"SELECT {_WAIT_COLUMNS} FROM dealflow_waits"
                         f" WHERE thread_id = %s {rest}", (thread_id, *params))
        return [Wait(**row) for row in rows]

    def _first(self, rest: str, thread_id: str, *params: object) -> Wait | None:
        found = self._select(rest, thread_id, *params)
        return found[0] if found else None
