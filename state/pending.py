"""What each thread has not yet written, and the one statement that writes it: `FLUSH`.

A durable super-step is one statement and one commit. Its task writes and its
tasks' units of work (`state.work.StepWork`: audit entries, spans, the registry's
row, receipts) are held here, per thread, and `FLUSH` writes them with the step's
checkpoint, after `dealflow_fence(thread, token)`: a refusal anywhere (a lost
lease, a deal that runs in another thread) writes none of it.

When held rows are written (see `state/README.md` for what a crash costs):
- with the thread's next checkpoint (`DealSaver.put`), or as soon as the saver is
  handed something it must not hold (an error, an interrupt, a resume);
- before any read of the thread (`get_tuple`, `list`), so no reader misses them;
- before an act that must be durable before it returns (an effect's claim, a fact
  write, a wait's opening): `act` sends them in the act's own statement, first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from state.database import Pool
from state.leases import Leases
from state.rows import Rows, flush_params
from state.transactions import LeaseLost, write_connection
from state.work import StepWork

# The fence, the held rows (one JSON array per table, `state.rows.flush_params`), then
# their audit entries in order: `dealflow_flush_v1` (state/functions.sql) writes only the
# tables that have rows.
FLUSH = """SELECT dealflow_flush_v1(p_thread => %(thread)s, p_token => %(token)s,
    p_rows => %(rows)s, p_audit => %(audit)s) AS written"""


def after_held(act: str) -> str:
    """The statement that writes a thread's held rows and runs `act` (a function call).

    `act` is one of ours that takes the held audit entries as `p_before =>
    %(audit)s` and writes them before its own (`state/functions.sql`), so the
    trail keeps the order things happened in; the other rows may land in
    either order, in the same statement.
    """
    return ("SELECT act.* FROM dealflow_flush_v1(p_thread => %(thread)s, p_token => %(token)s,"
            f" p_rows => %(rows)s, p_audit => '[]') AS flushed, {act} AS act")


# Pauses before the repeats of a flush whose connection was lost (about 4 s in all).
RECONNECT_PAUSES = (0.2, 0.5, 1.0, 2.0)
FLUSH_STRIPES = 64  # locks that keep one thread's flushes in order
REMEMBERED_THREADS = 10_000  # threads whose latest checkpoint id is remembered


class PendingWrites:
    """Per thread: the rows not yet written, and the checkpoint they belong after."""

    def __init__(self, pool: Pool, leases: Leases) -> None:
        """Write on `pool`, fenced by this process's `leases`."""
        self.pool = pool
        self.leases = leases
        self._lock = threading.Lock()
        self._held: dict[str, Rows] = {}
        self._latest: OrderedDict[str, str] = OrderedDict()
        self._stripes = [threading.RLock() for _ in range(FLUSH_STRIPES)]

    def seen(self, thread_id: str, checkpoint_id: str) -> None:
        """The thread's checkpoint `checkpoint_id` was saved or read: a run goes on from it."""
        with self._lock:
            self._latest[thread_id] = checkpoint_id
            self._latest.move_to_end(thread_id)
            while len(self._latest) > REMEMBERED_THREADS:
                self._latest.popitem(last=False)

    def hold(self, thread_id: str | None, checkpoint_id: str | None, rows: Rows) -> bool:
        """Hold `rows` for the step after `checkpoint_id`; False if not held.

        Held only if `checkpoint_id` is the thread's latest here (else the run is
        on another checkpointer, and the caller writes the rows itself).
        """
        if not thread_id or not checkpoint_id:
            return False
        with self._lock:
            if self._latest.get(thread_id) != checkpoint_id:
                return False
            self._held.setdefault(thread_id, Rows()).extend(rows)
            return True

    def hold_checkpoint(self, thread_id: str, checkpoint_id: str, rows: Rows) -> None:
        """Hold a checkpoint's rows; it is the thread's latest from now on."""
        with self._lock:
            self._held.setdefault(thread_id, Rows()).extend(rows)
        self.seen(thread_id, checkpoint_id)

    def discard(self, thread_id: str) -> None:
        """Forget what the thread holds (its history is being deleted)."""
        with self._lock:
            self._held.pop(thread_id, None)
            self._latest.pop(thread_id, None)

    def threads(self) -> list[str]:
        """The threads holding rows now."""
        with self._lock:
            return list(self._held)

    def end_task(self, work: StepWork) -> None:
        """A task ended: hold its work for the step's checkpoint, or write it now."""
        rows = work.rows.take()
        if rows and not self.hold(work.thread_id, work.checkpoint_id, rows):
            self.flush(work.thread_id, rows)

    def flush(self, thread_id: str | None, rows: Rows | None = None) -> None:
        """Write what the thread holds, then `rows`, fenced, in one statement (if any)."""
        with self._taken(thread_id, rows) as taken:
            if taken:
                params = flush_params(taken, thread_id, self.leases.token(thread_id))
                for pause in (*RECONNECT_PAUSES, None):
                    try:
                        with write_connection(self.pool) as conn:
                            conn.execute(FLUSH, params, prepare=True)
                        return
                    except psycopg.OperationalError:
                        if pause is None:
                            raise
                        time.sleep(pause)

    def act(self, thread_id: str | None, rows: Rows | None, alone: str, with_held: str,
            params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run a durable act of the thread, after what it holds, in one statement; its rows.

        `alone` runs when nothing is held (its `%(audit)s` is an empty list);
        else `with_held` (`after_held(...)`) writes the held rows (and `rows`,
        the acting task's own) first. If the act fails, they are held again.
        """
        with self._taken(thread_id, rows) as taken, write_connection(self.pool) as conn:
            if not taken:
                return conn.execute(alone, {**params, "audit": Jsonb([])}).fetchall()
            held = flush_params(taken, thread_id, self.leases.token(thread_id))
            return conn.execute(with_held, {**params, **held}).fetchall()

    @contextmanager
    def transaction(self, thread_id: str | None) -> Iterator[psycopg.Connection[Any]]:
        """A transaction of the thread that writes what the thread holds first (`FLUSH`)."""
        with self._taken(thread_id, None) as taken, write_connection(self.pool) as conn, \
                conn.transaction():
            if taken:
                conn.execute(FLUSH, flush_params(taken, thread_id, self.leases.token(thread_id)),
                             prepare=True)
            yield conn

    @contextmanager
    def _taken(self, thread_id: str | None, rows: Rows | None) -> Iterator[Rows]:
        """The thread's held rows and `rows`, taken under the thread's flush lock.

        If the block fails they are held again, in front (the thread's next write
        tries them again), unless the lease is lost: another process owns the
        thread now and runs its steps again.
        """
        if not thread_id:
            yield rows.take() if rows is not None else Rows()
            return
        with self._stripes[hash(thread_id) % FLUSH_STRIPES]:
            with self._lock:
                taken = self._held.pop(thread_id, Rows())
            if rows is not None:
                taken.extend(rows.take())
            try:
                yield taken
            except LeaseLost:
                raise
            except BaseException:
                if taken:
                    with self._lock:  # in front of what was held since
                        taken.extend(self._held.pop(thread_id, Rows()))
                        self._held[thread_id] = taken
                raise
