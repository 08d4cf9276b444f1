"""A super-step's task writes, held back to be saved with its checkpoint: one commit per step.

With `durability="sync"` LangGraph saves each finished task's writes
(`put_writes`) and then the super-step's checkpoint (`put`): two fenced
transactions, two commits. `FencedPostgresSaver` holds a task's plain writes
back here and saves them in the transaction of the checkpoint that follows.

What is held, and when it is saved:
- only writes made under durability "sync", for the checkpoint the saver last
  loaded or saved for that thread; the writes of an error, an interrupt or a
  resume are saved at once, together with whatever is held for the thread;
- the thread's next `put` saves them in its own transaction;
- any read, delete or prune of the thread saves them first, so no reader misses them;
- a background timer saves whatever nobody saved within `HOLD_SECONDS` (a step
  whose other task runs long, a run that ended without another checkpoint),
  and the process saves what is left when it exits normally.

A task's bookkeeping rows (spans, audit entries, receipts: `state.step_rows`)
are held here too, with the same rules.

The crash window: writes held back are lost if the process dies before they
are saved (at most `HOLD_SECONDS` after the task); the task then runs again on
recovery, as a task that was still running would. Effects are keyed by request
in the effect ledger, so a task that runs again performs nothing twice.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

HOLD_SECONDS = 0.2
REMEMBERED_THREADS = 10_000  # threads whose latest checkpoint id is remembered

Batch = tuple[str, list[Any]]  # (statement, its parameter rows)
log = logging.getLogger(__name__)
ROWS_PER_INSERT = 200
# the one row of an INSERT whose rows may be sent as one multi-row INSERT
_ONE_ROW = re.compile(r"\bVALUES\s*(\(\s*%s(?:\s*,\s*%s)*\s*\))", re.IGNORECASE)


def combined(batches: Sequence[Batch]) -> list[Batch]:
    """The same rows in as few statements: each statement's rows together, in order.

    The rows of a plain INSERT (or one that does nothing on conflict) become one
    multi-row INSERT; an upsert's or an update's rows stay one statement each,
    since one statement may not update a row twice. Rows of one table keep their
    order (the audit trail's order is its ids'); tables have no order among them.
    """
    grouped: dict[str, list[Any]] = {}
    for statement, rows in batches:
        grouped.setdefault(statement, []).extend(rows)
    out: list[Batch] = []
    for statement, rows in grouped.items():
        one_row = _ONE_ROW.search(statement)
        if one_row is None or len(rows) < 2 or "DO UPDATE" in statement.upper():
            out.append((statement, rows))
            continue
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start:start + ROWS_PER_INSERT]
            values = ", ".join([one_row.group(1)] * len(chunk))
            out.append((statement[:one_row.start(1)] + values + statement[one_row.end(1):],
                        [tuple(value for row in chunk for value in row)]))
    return out


_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def one_statement(batches: Sequence[Batch], head: str, head_params: Sequence[Any]
                  ) -> tuple[str, list[Any], list[Batch]]:
    """`head` (a SELECT) with every write of `batches` it can carry, as one statement.

    Each statement of `combined(batches)` that has one parameter row becomes a
    data-modifying CTE of `head`: Postgres runs every such CTE to completion, in
    the statement's one transaction, so `head` failing (the fence) undoes them
    all. Returns the statement, its parameters, and the batches it could not
    carry (a statement with several rows, which may touch one row twice): the
    caller runs those after it, in the same transaction.
    """
    ctes: list[str] = []
    params: list[Any] = []
    rest: list[Batch] = []
    for statement, rows in combined(batches):
        if len(rows) != 1 or not _WRITE.match(statement) or "%(" in statement:
            rest.append((statement, rows))
            continue
        ctes.append(f"w{len(ctes)} AS ({statement.strip().rstrip(';')})")
        params.extend(rows[0])
    if not ctes:
        return head, list(head_params), rest
    own = re.match(r"\s*WITH\s", head, re.IGNORECASE)  # the head's own CTEs follow ours
    query = (f"WITH {', '.join(ctes)}, {head[own.end():]}" if own
             else f"WITH {', '.join(ctes)} {head}")
    return query, [*params, *head_params], rest


class HeldWrites:
    """Per thread: the latest checkpoint id seen, the writes held for it, when they are due."""

    def __init__(self, save: Callable[[str, list[Batch]], None],
                 hold_seconds: float = HOLD_SECONDS) -> None:
        """`save(thread, batches)` writes batches in a fenced transaction of their own."""
        self._save = save
        self.hold_seconds = hold_seconds
        self._lock = threading.Condition()
        self._latest: OrderedDict[str, str] = OrderedDict()
        self._held: dict[str, list[Batch]] = {}
        self._due: dict[str, float] = {}
        self._timer: threading.Thread | None = None
        atexit.register(self.save_all)

    def seen(self, thread: str, checkpoint_id: str) -> None:
        """The thread's checkpoint `checkpoint_id` was loaded or saved: writes for it may wait."""
        with self._lock:
            self._latest[thread] = checkpoint_id
            self._latest.move_to_end(thread)
            while len(self._latest) > REMEMBERED_THREADS:
                self._latest.popitem(last=False)

    def hold(self, thread: str, checkpoint_id: str, *batches: Batch) -> bool:
        """Hold `batches` (all, or none) if for the thread's latest checkpoint; False: save now."""
        with self._lock:
            if self._latest.get(thread) != checkpoint_id:
                return False
            self._held.setdefault(thread, []).extend(batches)
            self._due.setdefault(thread, time.monotonic() + self.hold_seconds)
            self._start_timer()
            self._lock.notify()
            return True

    def take(self, thread: str, next_checkpoint_id: str | None = None) -> list[Batch]:
        """Take the thread's held writes (to save them); `next_checkpoint_id` becomes latest."""
        with self._lock:
            self._due.pop(thread, None)
            if next_checkpoint_id is not None:
                self._latest[thread] = next_checkpoint_id
                self._latest.move_to_end(thread)
            return self._held.pop(thread, [])

    def save(self, thread: str) -> None:
        """Save the thread's held writes now, if there are any."""
        batches = self.take(thread)
        if batches:
            self._save(thread, batches)

    def save_all(self) -> None:
        """Save every thread's held writes (the timer, and the process's exit)."""
        with self._lock:
            threads = list(self._held)
        for thread in threads:
            self._save_logged(thread)

    def _save_logged(self, thread: str) -> None:
        try:
            self.save(thread)
        except Exception as exc:  # a lost lease or connection: the task runs again
            log.warning("held writes of thread %s not saved: %s", thread, exc)

    def _start_timer(self) -> None:
        if self._timer is None:
            self._timer = threading.Thread(target=self._run_timer, daemon=True,
                                           name="dealflow-held-writes")
            self._timer.start()

    def _run_timer(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                due = [thread for thread, at in self._due.items() if at <= now]
                if not due:
                    wait = min(self._due.values(), default=now + 60) - now
                    self._lock.wait(timeout=max(wait, 0.01))
                    continue
            for thread in due:
                self._save_logged(thread)
