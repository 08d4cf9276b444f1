"""The base of every Postgres sandbox system: simulated faults, key checks, request log.

A repeated idempotency key with other arguments is refused (`IdempotencyConflict`),
as a payment provider refuses a reused key; every served request can be logged
in the statement or transaction that serves it (tests count real calls with it).
A call that takes effect in one statement is one round trip (`serve`), as one
request to a real system would be.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection
from psycopg.rows import DictRow

from agents.systems.base import IdempotencyConflict, Record
from agents.systems.faults import FaultInjector
from state.database import Pool
from state.transactions import write_transaction

# Log a request, or check it against the one logged before (migration 0014).
_ACCEPT = "SELECT sandbox_accept(%s, %s, %s)"
CONFLICT_SQLSTATE = "DF003"  # sandbox_accept: the key was used with another request
Row = tuple[str, tuple[Any, ...]]  # a statement and its parameters
# The statement that counts a served request (tests), sent with the request's own.
RequestLog = Callable[[str, str], Row]


def request_hash(request: dict[str, Any]) -> str:
    """SHA-256 of a request's arguments, as canonical JSON."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()
                          ).hexdigest()


@contextmanager
def refused_as_conflict() -> Iterator[None]:
    """`sandbox_accept` refusing a key (SQLSTATE DF003) becomes `IdempotencyConflict`."""
    try:
        yield
    except psycopg.Error as exc:
        if getattr(exc, "sqlstate", None) == CONFLICT_SQLSTATE:
            raise IdempotencyConflict(str(exc).strip().splitlines()[0]) from None
        raise


class SandboxSystem:
    """A system of record kept in Postgres tables, with simulated faults.

    Subclasses set `name`, `records_label` and `record_id` and, in each mutating
    call, run `before_call()` first. A call that takes effect in one statement
    sends it through `serve`, which accepts the request in the same statement;
    a call of several runs them in `serving()` and `accept(conn, key, request)`,
    and reads what it wrote with `_rows(..., conn=conn)`.
    """

    name = ""
    records_label = ""
    record_id = "id"

    def __init__(self, pool: Pool, faults: FaultInjector | None = None,
                 log: RequestLog | None = None) -> None:
        """Use `pool`; `faults` simulates outages and latency; `log` counts served requests."""
        self._pool = pool
        self._faults = faults or FaultInjector()
        self._log = log

    def before_call(self) -> None:
        """Simulated latency and outage of this system (raises `SystemUnavailable`)."""
        self._faults.before_call(self.name)

    def accept(self, conn: Connection[DictRow], key: str, request: dict[str, Any]) -> None:
        """Refuse `key` if it came before with another request; report the served request.

        Runs inside the serving transaction: a request is logged (see
        `sandbox_systems`) if and only if it took effect.
        """
        with refused_as_conflict():
            conn.execute(_ACCEPT, (key, self.name, request_hash(request)))
        if self._log is not None:
            conn.execute(*self._log(self.name, key))

    def serve(self, ctes: str, params: tuple[Any, ...], *, key: str,
              request: dict[str, Any]) -> Record | None:
        """Take effect and accept the request in one statement; the row `made` returned.

        `ctes` are the call's writes as common table expressions, one of them
        `made` (what the call returns); `params` are theirs, in order. The
        request is accepted (`sandbox_accept`) and logged in the same statement,
        so a refused key undoes the writes, and the request counts if and only
        if it took effect. None: `made` returned nothing (the key was served
        before: look it up).
        """
        log = self._log(self.name, key) if self._log is not None else None
        query = (f"WITH {ctes}" + (f", logged AS ({log[0]})" if log else "")
                 + " SELECT made.* FROM (SELECT sandbox_accept(%s, %s, %s)) AS accepted"
                 " LEFT JOIN made ON true")
        values = (*params, *(log[1] if log else ()), key, self.name, request_hash(request))
        with refused_as_conflict(), self._pool.connection() as conn:
            row = conn.execute(query, values).fetchone()
        return dict(row) if row is not None and any(v is not None for v in row.values()) \
            else None

    @contextmanager
    def serving(self) -> Iterator[Connection[DictRow]]:
        """The transaction a mutating call takes effect in, as its connection.

        A call reads back what it wrote (its receipt) on this connection
        (`_rows(..., conn=conn)`): one commit per call, and no second connection.
        """
        with write_transaction(self._pool) as conn:
            yield conn

    def _rows(self, sql: str, *params: Any,
              conn: Connection[DictRow] | None = None) -> list[Record]:
        """The rows `sql` selects, on `conn` if given (a `serving()` transaction), else the pool."""
        if conn is not None:
            return [dict(row) for row in conn.execute(sql, params).fetchall()]
        with self._pool.connection() as pooled:
            return [dict(row) for row in pooled.execute(sql, params).fetchall()]

    def _by_key(self, table: str, key: str, *,
                conn: Connection[DictRow] | None = None) -> Record | None:
        """The row of `table` written with `key`, on `conn` if given (see `_rows`)."""
        rows = self._rows(f"SELECT * FROM {table} WHERE idempotency_key = %s", key, conn=conn)
        return rows[0] if rows else None
