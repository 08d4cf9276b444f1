"""The base of every Postgres sandbox system: simulated faults, key checks, request log.

A repeated idempotency key with other arguments is refused (`IdempotencyConflict`),
as a payment provider refuses a reused key; every served request can be logged
inside the transaction that serves it (tests count real calls with it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow

from agents.systems.base import IdempotencyConflict, Record
from agents.systems.faults import FaultInjector
from state.database import Pool
from state.leases import write_transaction

# Log a request, or return the hash of the one logged before under its key.
_LOG_REQUEST = (
    "WITH logged AS (INSERT INTO sandbox_requests (idempotency_key, system, request_hash)"
    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING request_hash)"
    " SELECT request_hash FROM logged UNION ALL"
    " SELECT request_hash FROM sandbox_requests WHERE idempotency_key = %s")
_LOGGED_REQUEST = "SELECT request_hash FROM sandbox_requests WHERE idempotency_key = %s"
RequestLog = Callable[[Connection[DictRow], str, str], None]
# The connection of the call being served (`SandboxSystem.serving`), for its reads.
_serving: ContextVar[Connection[DictRow] | None] = ContextVar("sandbox_serving", default=None)


class SandboxSystem:
    """A system of record kept in Postgres tables, with simulated faults.

    Subclasses set `name`, `records_label` and `record_id` and, in each mutating
    call, run `before_call()` first and `accept(conn, key, request)` inside the
    transaction that takes effect.
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
        digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()
                                ).hexdigest()
        row = conn.execute(_LOG_REQUEST, (key, self.name, digest, key)).fetchone()
        if row is None:  # a request with this key committed while this one waited: read it
            row = conn.execute(_LOGGED_REQUEST, (key,)).fetchone()
        if row is not None and row["request_hash"] != digest:
            raise IdempotencyConflict(
                f"{self.name}: idempotency key {key} was used before with other arguments")
        if self._log is not None:
            self._log(conn, self.name, key)

    @contextmanager
    def serving(self) -> Iterator[Connection[DictRow]]:
        """The transaction a mutating call takes effect in; reads inside it use it too.

        So a call reads back what it wrote (its receipt) in the same transaction:
        one commit per call, and no second connection.
        """
        with write_transaction(self._pool) as conn:
            token = _serving.set(conn)
            try:
                yield conn
            finally:
                _serving.reset(token)

    def _rows(self, sql: str, *params: Any) -> list[Record]:
        serving = _serving.get()
        if serving is not None:
            return [dict(row) for row in serving.execute(sql, params).fetchall()]
        with self._pool.connection() as conn:
            return [dict(row) for row in conn.execute(sql, params).fetchall()]

    def _by_key(self, table: str, key: str) -> Record | None:
        rows = self._rows(f"SELECT * FROM {table} WHERE idempotency_key = %s", key)
        return rows[0] if rows else None
