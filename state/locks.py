"""One writer per thread: a Postgres advisory lock held while a process drives it.

The lock lives in the holder's database session, so a process that dies
releases it at once; nobody has to clean up after a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from state.database import Pool

_LOCK = "SELECT pg_advisory_lock(hashtextextended(%s, 0))"
_TRY = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0)) AS got"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%s, 0))"


class ThreadBusy(RuntimeError):
    """Another process is running or resuming this thread."""


def _name(thread_id: str) -> str:
    return f"dealflow-thread:{thread_id}"


@contextmanager
def thread_lock(pool: Pool, thread_id: str, *, wait_seconds: float = 0) -> Iterator[None]:
    """Hold the thread's lock; wait up to `wait_seconds` (0 = fail at once) for it."""
    with pool.connection() as conn:
        if wait_seconds > 0:
            try:
                conn.execute(f"SET lock_timeout = {int(wait_seconds * 1000)}")
                conn.execute(_LOCK, (_name(thread_id),))
            except psycopg.errors.LockNotAvailable:
                raise ThreadBusy(
                    f"thread {thread_id} is busy: another process held it for "
                    f"{wait_seconds:g}s"
                ) from None
            finally:
                conn.execute("RESET lock_timeout")
        else:
            row = conn.execute(_TRY, (_name(thread_id),)).fetchone()
            if not row or not row["got"]:
                raise ThreadBusy(
                    f"thread {thread_id} is busy: another process is running it "
                    "(try again when it finishes, or set DEALFLOW_BUSY_WAIT_SECONDS)"
                )
        try:
            yield
        finally:
            conn.execute(_UNLOCK, (_name(thread_id),))


def thread_is_held(pool: Pool, thread_id: str) -> bool:
    """Whether some live process holds the thread's lock right now."""
    with pool.connection() as conn:
        row = conn.execute(_TRY, (_name(thread_id),)).fetchone()
        if row and row["got"]:
            conn.execute(_UNLOCK, (_name(thread_id),))
            return False
        return True
