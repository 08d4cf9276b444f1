"""Fenced ownership of a thread: a lease (owner, fencing token, expiry) per thread.

A process drives a thread only while it holds the thread's lease. Leases live in
`dealflow_leases`, not in a database session, so a dropped connection does not
drop ownership, and ownership is never trusted blindly either: every write that
matters (ledger claim and receipt, fact write, checkpoint) calls
`dealflow_fence(thread, token)` in its own transaction. A process whose lease was
taken over, or expired while it stalled, fails that write with `LeaseLost` and
stops before any further external call.

`Leases` holds this process's leases and renews them in a background thread.
A lease is taken over when it has expired, or at once when its holder is a
process on this host that is gone (killed, crashed), so a crashed CLI never
makes the next one wait.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from state.database import Pool, fetch_all
from state.transactions import refusal

_log = logging.getLogger(__name__)

# Take the lease if it is free, expired, or held by the `stale` token (a process of
# this host that is gone). The row lock is taken first, without waiting: a holder
# inside a fenced write (the fence locks the row) makes this try fail at once
# (LockNotAvailable), and the caller tries again as it would for a busy lease.
_ACQUIRE = """
WITH locked AS (SELECT count(*) FROM (SELECT 1 FROM dealflow_leases
                WHERE thread_id = %(thread)s FOR UPDATE NOWAIT) AS row_lock)
INSERT INTO dealflow_leases (thread_id, token, owner, host, pid, expires_at)
SELECT %(thread)s, nextval('dealflow_lease_tokens'), %(owner)s, %(host)s, %(pid)s,
       clock_timestamp() + %(seconds)s * interval '1 second' FROM locked
ON CONFLICT (thread_id) DO UPDATE SET
    token = EXCLUDED.token, owner = EXCLUDED.owner, host = EXCLUDED.host,
    pid = EXCLUDED.pid, acquired_at = clock_timestamp(), expires_at = EXCLUDED.expires_at
WHERE dealflow_leases.expires_at <= clock_timestamp()
   OR dealflow_leases.token = %(stale)s
RETURNING token
"""
# A lease taken over or expired is not renewed: the fence refuses its holder's next write.
_RENEW = ("UPDATE dealflow_leases SET expires_at = clock_timestamp() + %s * interval '1 second'"
          " WHERE thread_id = %s AND token = %s AND expires_at > clock_timestamp()")
_RELEASE = ("UPDATE dealflow_leases SET expires_at = clock_timestamp()"
            " WHERE thread_id = %s AND token = %s")
_HOLDER = ("SELECT thread_id, token, owner, host, pid, expires_at,"
           " expires_at > clock_timestamp() AS unexpired FROM dealflow_leases"
           " WHERE thread_id = %s")


class ThreadBusy(RuntimeError):
    """Another live process holds the thread's lease."""


@dataclass(frozen=True)
class Holder:
    """Who holds a thread's lease, as the table says."""

    thread_id: str
    token: int
    owner: str
    host: str
    pid: int
    expires_at: datetime
    unexpired: bool

    @property
    def alive(self) -> bool:
        """Unexpired, and not a process of this host that is gone."""
        return self.unexpired and not (self.host == socket.gethostname()
                                       and not process_alive(self.pid))


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: assume alive, which only makes others wait


def holder(pool: Pool, thread_id: str) -> Holder | None:
    """The thread's lease row, or None if it never had one."""
    rows = fetch_all(pool, _HOLDER, (thread_id,))
    return Holder(**rows[0]) if rows else None


def thread_is_held(pool: Pool, thread_id: str) -> bool:
    """Whether some live process holds the thread's lease right now."""
    found = holder(pool, thread_id)
    return found is not None and found.alive


class Leases:
    """The leases this process holds, renewed in the background until released."""

    def __init__(self, pool: Pool, *, seconds: float = 30.0) -> None:
        """Leases on `pool` that expire `seconds` after their last renewal."""
        self._pool = pool
        self.seconds = seconds
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:8]}"
        self._held: dict[str, int] = {}
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._renewer: threading.Thread | None = None

    def token(self, thread_id: str | None) -> int | None:
        """The fencing token this process holds for the thread, or None."""
        return self._held.get(thread_id) if thread_id else None

    def fence(self, conn: psycopg.Connection[Any], thread_id: str | None) -> None:
        """In `conn`'s open transaction: refuse to go on unless this process may write."""
        if not thread_id:
            return
        try:
            conn.execute("SELECT dealflow_fence(%s, %s)", (thread_id, self.token(thread_id)))
        except psycopg.Error as exc:
            raise refusal(exc) from None

    @contextmanager
    def hold(self, thread_id: str, *, wait_seconds: float = 0) -> Iterator[int]:
        """Hold the thread's lease (waiting up to `wait_seconds`); yield its token."""
        with self._guard:
            if thread_id in self._held:
                raise ThreadBusy(f"thread {thread_id} is busy: this process is running it")
        token = self._acquire(thread_id, wait_seconds)
        with self._guard:
            self._held[thread_id] = token
            self._start_renewer()
        try:
            yield token
        finally:
            with self._guard:
                self._held.pop(thread_id, None)
            self._release(thread_id, token)

    def close(self) -> None:
        """Stop renewing (held leases then expire on their own)."""
        self._wake.set()

    # -- internals -----------------------------------------------------------
    def _acquire(self, thread_id: str, wait_seconds: float) -> int:
        deadline = time.monotonic() + wait_seconds
        pause = 0.05
        stale: int | None = None
        while True:
            token = self._try_acquire(thread_id, stale)
            if token is not None:
                return token
            found = holder(self._pool, thread_id)  # who holds it, read only when taken
            gone = found.token if found is not None and not found.alive else None
            if gone is not None and gone != stale:
                stale = gone  # its holder is gone: take it over at once
                continue
            if time.monotonic() >= deadline:
                raise ThreadBusy(self._busy_message(thread_id, found, wait_seconds))
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 1.0)

    def _try_acquire(self, thread_id: str, stale: int | None) -> int | None:
        """The new token if the lease was free, expired, or held by the `stale` token.

        One statement, which waits for no lock (`_ACQUIRE`): None also when a
        holder is inside a write (one frozen mid-transaction keeps its row lock).
        """
        try:
            with self._pool.connection() as conn:
                row = conn.execute(_ACQUIRE, {
                    "thread": thread_id, "owner": self.owner, "host": self.host,
                    "pid": self.pid, "seconds": self.seconds, "stale": stale}).fetchone()
        except psycopg.errors.LockNotAvailable:
            return None
        return int(row["token"]) if row is not None else None

    @staticmethod
    def _busy_message(thread_id: str, found: Holder | None, wait_seconds: float) -> str:
        who = f" ({found.owner})" if found is not None else ""
        if wait_seconds > 0:
            return (f"thread {thread_id} is busy: another process{who} held it for "
                    f"{wait_seconds:g}s")
        return (f"thread {thread_id} is busy: another process{who} is running it "
                "(try again when it finishes, or set DEALFLOW_BUSY_WAIT_SECONDS)")

    def _release(self, thread_id: str, token: int) -> None:
        try:
            with self._pool.connection(timeout=5) as conn:
                conn.execute(_RELEASE, (thread_id, token))
        except Exception as exc:  # the lease then expires on its own
            _log.info("could not release lease of %s: %s", thread_id, exc)

    def _start_renewer(self) -> None:
        if self._renewer is None or not self._renewer.is_alive():
            self._wake.clear()
            self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                             name="dealflow-lease-renewer")
            self._renewer.start()

    def _renew_loop(self) -> None:
        while not self._wake.wait(self.seconds / 3):
            with self._guard:
                held = dict(self._held)
            for thread_id, token in held.items():
                self._renew(thread_id, token)

    def _renew(self, thread_id: str, token: int) -> None:
        try:
            with self._pool.connection(timeout=self.seconds / 3) as conn:
                conn.execute(_RENEW, (self.seconds, thread_id, token))
        except Exception as exc:  # an outage: the next write is fenced if it lasts
            _log.info("could not renew lease of %s: %s", thread_id, exc)
