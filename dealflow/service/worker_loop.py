"""Workers that ride out database outages: procrastinate's worker, run again with backoff.

procrastinate's worker stops when it loses its database: a failed side task
(heartbeat, periodic deferrer, LISTEN connection) stops it quietly, a failed
fetch raises. `run_workers` waits (capped, jittered exponential backoff) until
the database answers and runs it again, for as long as it is not cancelled.
The jobs it had taken go back to the queue: its stale heartbeat lets the sweep
hand them back (procrastinate's stalled-job API), its jobs' errors are retried.
Only an error that has nothing to do with the connection (a bug, procrastinate's
tables gone) ends it, as `WorkersFailed`: the process then exits non-zero for
its supervisor to restart it. `WorkerHealth` is what `/healthz` reads of them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import procrastinate
import psycopg

_log = logging.getLogger("dealflow.workers")
SIDE_TASK_FAILED = "side_task_failed"  # procrastinate's log action when a side task dies


class WorkersFailed(RuntimeError):
    """The workers cannot go on (not a lost connection): the process must exit non-zero."""


@dataclass
class WorkerHealth:
    """The state of this process's workers, for `/healthz`."""

    concurrency: int
    state: str = "starting"  # starting, running, reconnecting, failed, stopped
    reason: str = ""
    since: float = field(default_factory=time.monotonic)
    restarts: int = 0

    def set(self, state: str, reason: str = "") -> None:
        """Enter `state` (for `reason`) now."""
        self.state, self.reason, self.since = state, reason, time.monotonic()

    def summary(self) -> dict[str, Any]:
        """JSON-ready: state, reason, seconds in that state, restarts so far."""
        return {"concurrency": self.concurrency, "state": self.state, "reason": self.reason,
                "seconds": round(time.monotonic() - self.since, 1), "restarts": self.restarts}


@dataclass(frozen=True)
class Backoff:
    """Exponential delays from `initial` to `cap` seconds, jittered down to half."""

    initial: float = 0.5
    cap: float = 30.0
    reset_after: float = 60.0  # a run this long starts the delays over

    def delay(self, attempt: int) -> float:
        """The wait before attempt number `attempt` (0-based)."""
        return min(self.cap, self.initial * 2 ** min(attempt, 30)) * random.uniform(0.5, 1.0)


def is_connection_error(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) is a lost or refused database connection."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, OSError)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def one_line(exc: BaseException) -> str:
    """The first line of the message of what caused `exc` in the end, with its type."""
    inner: BaseException = exc
    while inner.__cause__ is not None:  # procrastinate's wrappers say only "Database error"
        inner = inner.__cause__
    text = (str(inner).strip().splitlines() or [""])[0]
    return f"{type(inner).__name__}: {text}"[:300] if text else type(inner).__name__


class _SideTaskErrors(logging.Handler):
    """Keeps the error that made procrastinate's worker stop itself (its log record)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) == SIDE_TASK_FAILED and record.exc_info:
            self.errors.append(record.exc_info[1])  # type: ignore[arg-type]
            return
        # being a handler in the hierarchy stops logging's own last resort: do its job
        if not logging.getLogger().handlers and logging.lastResort is not None:
            logging.lastResort.handle(record)


async def supervise(queue: procrastinate.App, run: Callable[[], Awaitable[None]],
                    health: WorkerHealth, backoff: Backoff | None = None) -> None:
    """Await `run()` (this process's workers on `queue`) until cancelled, again after outages.

    `run` must not stop on signals of its own: cancelling this is the way to
    stop it (gracefully: the jobs at hand finish). Raises `WorkersFailed` when
    the workers stopped for a reason other than the database.
    """
    backoff = backoff or Backoff()
    worker_log = logging.getLogger("procrastinate.worker")
    captured = _SideTaskErrors()
    worker_log.addHandler(captured)
    attempt = 0
    try:
        while True:
            health.set("running")
            started = time.monotonic()
            error = await _run_once(run, captured)
            if not is_connection_error(error) and error is not None:
                health.set("failed", one_line(error))
                raise WorkersFailed(f"the workers stopped: {one_line(error)}") from error
            if time.monotonic() - started >= backoff.reset_after:
                attempt = 0
            why = one_line(error) if error else "the worker stopped without an error"
            health.set("reconnecting", why)
            _log.warning("workers: lost the database (%s); reconnecting", why)
            attempt = await _until_database_answers(queue, backoff, attempt, health)
            health.restarts += 1
            _log.warning("workers: the database answers again; worker restart %d",
                         health.restarts)
    except asyncio.CancelledError:
        health.set("stopped")
        raise
    finally:
        worker_log.removeHandler(captured)


async def _run_once(run: Callable[[], Awaitable[None]],
                    captured: _SideTaskErrors) -> BaseException | None:
    """One run of the workers; the error that ended them (None: they did not say)."""
    captured.errors.clear()
    try:
        await run()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # classified by the caller
        return exc
    return captured.errors[-1] if captured.errors else None


async def _until_database_answers(queue: procrastinate.App, backoff: Backoff, attempt: int,
                                  health: WorkerHealth) -> int:
    """Wait, with backoff, until procrastinate's tables answer; the next attempt number."""
    while True:
        await asyncio.sleep(backoff.delay(attempt))
        attempt += 1
        try:
            found = await asyncio.wait_for(queue.job_manager.check_connection_async(), 15)
        except Exception as exc:  # classified here (a timeout is an OSError)
            if not is_connection_error(exc):
                health.set("failed", one_line(exc))
                raise WorkersFailed(f"the workers cannot reconnect: {one_line(exc)}") from exc
            health.reason = one_line(exc)
            if attempt % 5 == 0:
                _log.warning("workers: the database is still unreachable after %d attempts"
                             " (%s)", attempt, health.reason)
            continue
        if not found:
            health.set("failed", "procrastinate's tables are missing")
            raise WorkersFailed("the workers cannot go on: procrastinate's tables are missing")
        return attempt
