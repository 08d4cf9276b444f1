"""The notification outbox: written with what it announces, posted later, at least once.

A notification is a row of `dealflow_outbox`, inserted in the transaction of
the act it announces (a wait opening, a deadline firing), under a dedupe key
that is also the message's `id`: the same act announced twice is one row, and
a receiver de-duplicates repeated posts by `id`. `take_due` hands rows to a
deliverer for a while (a worker that dies mid-post gives them back when that
while is over); `sent` and `failed` record how the post went, `failed`
scheduling the next attempt with an exponential back-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from state.audit import Origin
from state.database import Pool, fetch_all

CLAIM_SECONDS = 60  # a taken row comes back to the queue after this long unsettled
MAX_BACKOFF_SECONDS = 300


@dataclass(frozen=True)
class Notice:
    """What to tell people: an event name (`review.requested`) and a sentence."""

    event: str
    text: str
    to: str | None = None
    due_at: datetime | None = None


@dataclass(frozen=True)
class Pending:
    """A notification taken for delivery."""

    id: int
    message: dict[str, Any]
    attempts: int


def backoff_seconds(attempts: int) -> float:
    """Wait before the next attempt after `attempts` failures: 1 s, 2 s, 4 s, … 5 min."""
    return float(min(2 ** max(0, attempts - 1), MAX_BACKOFF_SECONDS))


class Outbox:
    """Reads and writes `dealflow_outbox`."""

    def __init__(self, pool: Pool) -> None:
        """Use `pool` for deliveries and reads (adds run in the caller's transaction)."""
        self._pool = pool

    @staticmethod
    def message(key: str, origin: Origin, notice: Notice) -> dict[str, Any]:
        """The message that announces `notice` under `key` (its `id`), as it is posted."""
        message = {"id": key, "text": notice.text, "event": notice.event,
                   "deal_id": origin.deal_id, "thread_id": origin.thread_id,
                   "due_at": notice.due_at.isoformat() if notice.due_at else None}
        if notice.to:
            message["to"] = notice.to
        return message

    def add(self, conn: Connection[DictRow], key: str, origin: Origin, notice: Notice) -> None:
        """In `conn`'s transaction: queue `notice` once under `key` (its `id`)."""
        message = self.message(key, origin, notice)
        conn.execute(
            "INSERT INTO dealflow_outbox (dedupe_key, event, deal_id, thread_id, message)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (dedupe_key) DO NOTHING",
            (key, notice.event, origin.deal_id, origin.thread_id, Jsonb(message)))

    def take_due(self, limit: int = 50) -> list[Pending]:
        """Take up to `limit` notifications due for a post (each for `CLAIM_SECONDS`)."""
        rows = fetch_all(
            self._pool, "UPDATE dealflow_outbox SET next_attempt_at = clock_timestamp()"
            " + make_interval(secs => %s) WHERE id IN (SELECT id FROM dealflow_outbox"
            " WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
            " RETURNING id, message, attempts", (CLAIM_SECONDS, limit))
        return [Pending(**row) for row in sorted(rows, key=lambda r: r["id"])]

    def sent(self, pending: Pending) -> None:
        """The receiver took it."""
        self._settle(pending, "UPDATE dealflow_outbox SET status = 'sent', sent_at ="
                     " clock_timestamp(), attempts = attempts + 1 WHERE id = %s", ())

    def skipped(self, pending: Pending, why: str) -> None:
        """Nobody to send it to: kept, marked skipped."""
        self._settle(pending, "UPDATE dealflow_outbox SET status = 'skipped', last_error = %s"
                     " WHERE id = %s", (why[:500],))

    def failed(self, pending: Pending, error: str) -> None:
        """The post failed: try again after the back-off."""
        self._settle(pending, "UPDATE dealflow_outbox SET attempts = attempts + 1,"
                     " last_error = %s, next_attempt_at = clock_timestamp()"
                     " + make_interval(secs => %s) WHERE id = %s",
                     (error[:500], backoff_seconds(pending.attempts + 1)))

    def _settle(self, pending: Pending, sql: str, params: tuple[Any, ...]) -> None:
        with self._pool.connection() as conn:
            conn.execute(sql, (*params, pending.id))

    def for_deal(self, deal_id: str) -> list[dict[str, Any]]:
        """The deal's notifications, oldest first, with how their delivery went."""
        return [dict(row) for row in fetch_all(
            self._pool, "SELECT id, dedupe_key, event, status, attempts, created_at, sent_at,"
            " last_error, message FROM dealflow_outbox WHERE deal_id = %s ORDER BY id",
            (deal_id,))]
