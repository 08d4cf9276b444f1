"""Statements sent as one: a transaction's writes in as few statements as they allow.

`combined` merges the rows of one plain INSERT into a multi-row INSERT;
`one_statement` makes a transaction's writes the data-modifying CTEs of its
first statement (the fence), so a checkpoint, its blobs, a step's held writes
and its bookkeeping rows are one statement and one commit; `Recorder` stands in
for LangGraph's cursor to collect the statements of a checkpoint write.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import nullcontext
from functools import lru_cache
from typing import Any

import psycopg

Batch = tuple[str, list[Any]]  # (statement, its parameter rows)
# Refuses the transaction unless the thread's lease is held by the token (`state.leases`)
FENCE_SQL = "SELECT dealflow_fence(%s, %s)"
MAX_PARAMS = 30_000  # per statement, well below the protocol's 65,535
# A carried statement of at most this many parameters is prepared (psycopg keeps the
# last 100 per connection): its few shapes repeat every step, and a prepared one skips
# the server's parse and plan (about 1 ms a durable step, `make bench` W1). A larger
# one (a wide fan-out's rows) is rare, and would only push the common ones out.
PREPARED_PARAMS = 400
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
        if len(rows) < 2 or _multi_row(statement, 2) is None:
            out.append((statement, rows))
            continue
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start:start + ROWS_PER_INSERT]
            out.append((_multi_row(statement, len(chunk)) or statement,
                        [tuple(value for row in chunk for value in row)]))
    return out


@lru_cache(maxsize=1024)
def _multi_row(statement: str, rows: int) -> str | None:
    """`statement` (a plain INSERT of one row) as an INSERT of `rows` rows; None if it is not."""
    one_row = _ONE_ROW.search(statement)
    if one_row is None or "DO UPDATE" in statement.upper():
        return None
    values = ", ".join([one_row.group(1)] * rows)
    return statement[:one_row.start(1)] + values + statement[one_row.end(1):]


_WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


def one_statement(batches: Sequence[Batch], head: str, head_params: Sequence[Any]
                  ) -> tuple[str, list[Any], list[Batch]]:
    """`head` (a SELECT) with every write of `batches` it can carry, as one statement.

    Each statement of `combined(batches)` that has one parameter row becomes a
    data-modifying CTE of `head`: Postgres runs every such CTE to completion, in
    the statement's one transaction, so `head` failing (the fence) undoes them
    all. Returns the statement, its parameters, and the batches it could not
    carry: a statement with several rows (which may touch one row twice), and
    all that follows once `MAX_PARAMS` parameters are reached. The caller runs
    those after it, in the same transaction, in their order.
    """
    ctes, params, rest = _carried(batches, counted=False)
    if not ctes:
        return head, list(head_params), rest
    own = re.match(r"\s*WITH\s", head, re.IGNORECASE)  # the head's own CTEs follow ours
    query = (f"WITH {', '.join(ctes)}, {head[own.end():]}" if own
             else f"WITH {', '.join(ctes)} {head}")
    return query, [*params, *head_params], rest


def call_after(batches: Sequence[Batch], call: str, call_params: Sequence[Any]
               ) -> tuple[str, list[Any], list[Batch]]:
    """`SELECT * FROM call` with the writes of `batches`, which Postgres makes before the call.

    As `one_statement`, but the rows `call` (a set-returning function) writes
    come after the carried ones (an audit trail keeps that order): each carried
    write returns its rows, and `call`'s first argument, `{after}` in its text,
    is their count, so the call waits for all of them.
    """
    ctes, params, rest = _carried(batches, counted=True)
    if not ctes:
        return f"SELECT * FROM {call.format(after='0')}", list(call_params), rest
    count = " + ".join(f"(SELECT count(*) FROM w{i})" for i in range(len(ctes)))
    query = (f"WITH {', '.join(ctes)} SELECT called.* FROM (SELECT {count} AS n) AS carried,"
             f" LATERAL {call.format(after='carried.n')} AS called")
    return query, [*params, *call_params], rest


def _carried(batches: Sequence[Batch], *, counted: bool
             ) -> tuple[list[str], list[Any], list[Batch]]:
    """The CTEs that carry `batches`, their parameters, and the batches they cannot carry.

    `counted`: each CTE returns its rows (see `call_after`).
    """
    ctes: list[str] = []
    params: list[Any] = []
    rest: list[Batch] = []
    full = False
    for statement, rows in combined(batches):
        full = full or len(params) + sum(map(len, rows)) > MAX_PARAMS
        body = _cte_body(statement)
        if full or len(rows) != 1 or body is None:
            rest.append((statement, rows))
            continue
        if counted and not _RETURNING.search(body):
            body += " RETURNING 1"
        ctes.append(f"w{len(ctes)} AS ({body})")
        params.extend(rows[0])
    return ctes, params, rest


@lru_cache(maxsize=1024)
def _cte_body(statement: str) -> str | None:
    """`statement` as the body of a data-modifying CTE; None if it cannot be one."""
    if not _WRITE.match(statement) or "%(" in statement:
        return None
    return statement.strip().rstrip(";")


class Recorder:
    """Stands in for the cursor of a fenced write: keeps LangGraph's statements to send as one."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def execute(self, query: str, params: Sequence[Any] = ()) -> None:
        """Keep one statement."""
        self.batches.append((query, [tuple(params)]))

    def executemany(self, query: str, params_seq: Any) -> None:
        """Keep one statement's rows."""
        self.batches.append((query, [tuple(row) for row in params_seq]))


def execute_carrying(conn: psycopg.Connection[Any], batches: Sequence[Batch], head: str,
                     head_params: Sequence[Any], *, binary: bool = False) -> psycopg.Cursor[Any]:
    """Run `head` carrying `batches` (`one_statement`), then the batches it could not carry.

    Inside the caller's transaction; returns the cursor of `head`.
    """
    query, params, rest = one_statement(batches, head, head_params)
    cursor = conn.execute(query, params, prepare=_prepare(params), binary=binary)
    _execute_rest(conn, rest, binary)
    return cursor


def execute_alone(conn: psycopg.Connection[Any], batches: Sequence[Batch], head: str,
                  head_params: Sequence[Any], *, binary: bool = False) -> list[Any]:
    """`head` carrying `batches`, as a transaction of its own; the rows `head` returns.

    `conn` is in autocommit and outside a transaction. One statement is sent
    alone: a statement is its own transaction, and a BEGIN/COMMIT around it (or
    a pipeline) costs more than it saves (see `state.transactions.write_transaction`).
    Batches `one_statement` cannot carry make it a transaction of several.
    """
    query, params, rest = one_statement(batches, head, head_params)
    with conn.transaction() if rest else nullcontext():
        cursor = conn.execute(query, params, prepare=_prepare(params), binary=binary)
        rows = cursor.fetchall() if cursor.description is not None else []
        _execute_rest(conn, rest, binary)
    return rows


def call_alone(conn: psycopg.Connection[Any], batches: Sequence[Batch], call: str,
               call_params: Sequence[Any]) -> list[Any]:
    """`call` carrying `batches` (`call_after`), as a transaction of its own; its rows.

    One statement when the batches allow it; else the batches first (with those
    that cannot be carried), then the call, in one transaction.
    """
    query, params, rest = call_after(batches, call, call_params)
    if not rest:
        return conn.execute(query, params, prepare=_prepare(params)).fetchall()
    with conn.transaction():
        execute_carrying(conn, batches, "SELECT 1", ())
        query, params, _ = call_after([], call, call_params)
        return conn.execute(query, params).fetchall()


def write_fenced(conn: psycopg.Connection[Any], thread: str, token: int | None,
                 batches: list[Batch]) -> None:
    """The fence and `batches` in one transaction: one statement when they allow it."""
    execute_alone(conn, batches, FENCE_SQL, (thread, token), binary=True)


def _prepare(params: Sequence[Any]) -> bool | None:
    """The `prepare` of a carried statement: psycopg's default (prepared), or never."""
    return None if len(params) <= PREPARED_PARAMS else False


def _execute_rest(conn: psycopg.Connection[Any], rest: list[Batch], binary: bool) -> None:
    """The batches `one_statement` could not carry, in order (inside a transaction)."""
    if rest:
        with conn.cursor(binary=binary) as cur:
            for statement, rows in rest:
                cur.executemany(statement, rows)
