"""A super-step's task writes, held back to be saved with its checkpoint: one commit per step.

With `durability="sync"` LangGraph saves each finished task's writes
(`put_writes`) and then the super-step's checkpoint (`put`): two fenced
transactions, two commits. `FencedPostgresSaver` holds a task's plain writes
back here and saves them in the transaction of the checkpoint that follows.

What is held, and when it is saved:
- only writes made under durability "sync", for the checkpoint the saver last
  loaded or saved for that thread, or for one of its checkpoints still held here
  (LangGraph's executor may run a task's `put_writes` after the `put` of the
  next checkpoint: the writes still go out with the checkpoint they belong to);
  the writes of an error, an interrupt or a resume are saved at once, together
  with whatever is held for the thread;
- the thread's next `put` saves them in its own transaction;
- any read, delete or prune of the thread saves them first, so no reader misses them;
- a background timer saves whatever nobody saved within `HOLD_SECONDS` (a step
  whose other task runs long, a run that ended without another checkpoint),
  and the process saves what is left when it exits normally.

A task's bookkeeping rows (spans, audit entries, receipts, registry updates:
`state.step_rows`) and the checkpoints a run goes on from (its input, every
step's but the last: `state.fenced_saver.leads_on`) are held here too, with the
same rules: the next step's first fenced write (a claim, a fact) saves them.
Rows the timer could not save are dropped (a lost lease: the task runs again
elsewhere), except for a refusal the run must meet (`keep`, a deal
registered to another thread): those stay held, and the thread's next
checkpoint raises it.

The crash window: what is held back is lost if the process dies before it is
saved (at most `HOLD_SECONDS` after it was held, and never after the thread's
next fenced write); the steps since the thread's last saved checkpoint then run
again on recovery, as a task that was still running would. A lost input
checkpoint leaves a thread with no checkpoint: the service starts it again from
the terms in the deal registry (`dealflow recover`). Effects are claimed in the
effect ledger (a fenced write, which saves what is held first) before they are
made, and keyed by request, so a step that runs again performs nothing twice.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from state.statements import Batch

HOLD_SECONDS = 0.2
FLUSH_STRIPES = 64  # locks that order the writes of one thread's held rows
REMEMBERED_THREADS = 10_000  # threads whose latest checkpoint id is remembered

log = logging.getLogger(__name__)
class HeldWrites:
    """Per thread: the latest checkpoint id seen, the writes held for it, when they are due."""

    def __init__(self, save: Callable[[str, list[Batch]], None],
                 hold_seconds: float = HOLD_SECONDS,
                 keep: Callable[[Exception], bool] = lambda exc: False) -> None:
        """`save(thread, batches)` writes batches in a fenced transaction of their own.

        `keep(exc)`: whether rows the timer failed to save stay held, for the
        thread's next checkpoint to meet the same refusal and raise it in the run.
        """
        self._save = save
        self._keep = keep
        self.hold_seconds = hold_seconds
        self._lock = threading.Condition()
        self._latest: OrderedDict[str, str] = OrderedDict()
        self._held: dict[str, list[Batch]] = {}
        self._held_checkpoints: dict[str, set[str]] = {}  # ids of checkpoints in `_held`
        self._due: dict[str, float] = {}
        self._timer: threading.Thread | None = None
        self._stripes = [threading.RLock() for _ in range(FLUSH_STRIPES)]
        atexit.register(self.save_all)

    def seen(self, thread: str, checkpoint_id: str) -> None:
        """The thread's checkpoint `checkpoint_id` was loaded or saved: writes for it may wait."""
        with self._lock:
            self._set_latest(thread, checkpoint_id)

    def hold(self, thread: str, checkpoint_id: str, *batches: Batch) -> bool:
        """Hold `batches` (all, or none) for the thread's latest checkpoint; False: save now.

        Writes for one of the thread's checkpoints still held are held too: they
        are saved with it.
        """
        with self._lock:
            if self._latest.get(thread) != checkpoint_id and \
                    checkpoint_id not in self._held_checkpoints.get(thread, ()):
                return False
            self._hold(thread, batches)
            return True

    def hold_checkpoint(self, thread: str, checkpoint_id: str, *batches: Batch) -> None:
        """Hold the statements that save checkpoint `checkpoint_id`, now the thread's latest."""
        with self._lock:
            self._set_latest(thread, checkpoint_id)
            self._held_checkpoints.setdefault(thread, set()).add(checkpoint_id)
            self._hold(thread, batches)

    def take(self, thread: str, next_checkpoint_id: str | None = None) -> list[Batch]:
        """Take the thread's held writes (to save them); `next_checkpoint_id` becomes latest."""
        with self._lock:
            self._due.pop(thread, None)
            self._held_checkpoints.pop(thread, None)
            if next_checkpoint_id is not None:
                self._set_latest(thread, next_checkpoint_id)
            return self._held.pop(thread, [])

    def _set_latest(self, thread: str, checkpoint_id: str) -> None:
        """Under the lock: the thread's latest checkpoint (the oldest threads forgotten)."""
        self._latest[thread] = checkpoint_id
        self._latest.move_to_end(thread)
        while len(self._latest) > REMEMBERED_THREADS:
            self._latest.popitem(last=False)

    def _hold(self, thread: str, batches: tuple[Batch, ...]) -> None:
        """Under the lock: add `batches` to the thread's held writes; start their clock."""
        self._held.setdefault(thread, []).extend(batches)
        if thread not in self._due:
            self._due[thread] = time.monotonic() + self.hold_seconds
            if len(self._due) == 1:  # else the timer already waits for an earlier due
                self._start_timer()
                self._lock.notify()

    def flushing(self, thread: str) -> threading.RLock:
        """Held from taking a thread's rows until they are written (committed).

        So two writes of one thread's held rows (the timer's and the thread's
        next checkpoint, say) never overlap, and rows land in the order they
        were held: the audit trail's ids follow what happened.
        """
        return self._stripes[hash(thread) % FLUSH_STRIPES]

    def save(self, thread: str) -> None:
        """Save the thread's held writes now, if there are any."""
        with self.flushing(thread):
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
        with self.flushing(thread):
            batches = self.take(thread)
            if not batches:
                return
            try:
                self._save(thread, batches)
            except Exception as exc:  # a lost lease or connection: the task runs again
                log.warning("held writes of thread %s not saved: %s", thread, exc)
                if self._keep(exc):  # no timer again: the next write or read takes them
                    with self._lock:
                        self._held[thread] = batches + self._held.get(thread, [])

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
