"""A durable step's bookkeeping rows, saved in the transaction of the step's checkpoint.

A node's spans, its audit entries and the registry's status update would each
cost a transaction of their own, and a commit. Inside a node of a run whose
checkpointer can carry them (`FencedPostgresSaver` under durability "sync"),
`write_row` hands such a row to the checkpointer instead: it is saved with the
task's writes, in the fenced transaction of the step's checkpoint (see
`state.held_writes` for when that happens and what a crash changes: the rows of
a task that dies unsaved are written again when the task runs again).

A fenced write the task makes itself (an effect's claim, a fact write, a wait's
opening) first writes what the task holds (`fenced_statement`, one statement sent
alone; `fenced_carrying`, a transaction of several), so the rows of one thread are
saved in the order they were made.

Anywhere else (a CLI decision, the service, a checkpointer that cannot carry
rows, another durability) `write_row` writes the row at once, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from psycopg import Connection, Cursor

from state.database import Pool
from state.statements import Batch, execute_alone, execute_carrying
from state.transactions import write_connection, write_transaction

Row = tuple[str, tuple[Any, ...]]  # a statement and its parameters
FirstStatement = Callable[[str, Sequence[Any]], Cursor[Any]]  # see fenced_carrying
CHECKPOINTER_KEY = "__pregel_checkpointer"  # where LangGraph hands a task its checkpointer


@dataclass(frozen=True)
class StepRows:
    """The rows a task hands to its run's checkpointer, for the step's checkpoint."""

    hold: Callable[[list[Batch]], bool]  # hold batches (all or none); False: write them now
    take: Callable[[], list[Batch]]  # take what is held for the thread (to write it now)


_step: ContextVar[StepRows | None] = ContextVar("dealflow_step_rows", default=None)


def step_rows_of(configurable: Mapping[str, Any], checkpoint_id: str | None) -> StepRows | None:
    """Where a task's rows can ride: its run's checkpointer, if it carries rows (else None)."""
    checkpointer = configurable.get(CHECKPOINTER_KEY)
    hold_rows = getattr(checkpointer, "hold_rows", None)
    take_rows = getattr(checkpointer, "take_rows", None)
    if hold_rows is None or take_rows is None or not checkpoint_id \
            or "thread_id" not in configurable:
        return None
    return StepRows(hold=lambda batches: bool(hold_rows(configurable, checkpoint_id, *batches)),
                    take=lambda: list(take_rows(configurable)))


@contextmanager
def rows_ride_with(step: StepRows | None) -> Iterator[None]:
    """Inside the block, `write_row` hands rows to `step` (None: they are written at once)."""
    token = _step.set(step)
    try:
        yield
    finally:
        _step.reset(token)


def write_row(pool: Pool, statement: str, params: tuple[Any, ...]) -> None:
    """Run one row's statement: with the step's checkpoint inside a durable step, else now."""
    if not hold_rows([(statement, params)]):
        with pool.connection() as conn:
            conn.execute(statement, params)


def hold_rows(rows: list[Row]) -> bool:
    """Hand `rows` (all or none) to the durable step's checkpoint; False: the caller writes them."""
    step = _step.get()
    return step is not None and step.hold([(statement, [params]) for statement, params in rows])


Send = Callable[[Connection[Any], Sequence[Batch], str, Sequence[Any]], list[Any]]


def fenced_statement(pool: Pool, query: str, params: Sequence[Any], *,
                     send: Send = execute_alone) -> list[Any]:
    """One fenced statement of the step's thread, carrying what the step holds; its rows.

    The statement and the held rows are one transaction of their own, sent as
    one statement when they allow it (`execute_alone`; `call_alone` for a
    function that writes rows of its own after them): the held rows are saved
    first, as `fenced_carrying` saves them, without a BEGIN and a COMMIT round
    trip. If it fails (a conflict, a lost lease), the rows are held again.
    """
    step = _step.get()
    batches = step.take() if step is not None else []
    try:
        with write_connection(pool) as conn:
            return send(conn, batches, query, params)
    except BaseException:
        if step is not None and batches:
            step.hold(batches)
        raise


@contextmanager
def fenced_carrying(pool: Pool) -> Iterator[tuple[Connection[Any], FirstStatement]]:
    """A write transaction of the step's thread that saves what the step holds first.

    The held rows are taken before a connection is (waiting, if need be, for a
    save of the thread's rows already under way, so these land after those).
    Yields the connection and `first(query, params)`, which runs the
    transaction's first statement (its fence) with the held rows as
    data-modifying CTEs of it (`execute_carrying`): one statement, and a row held
    by the task (a receipt, an audit entry) is saved before any row the
    transaction writes after it. If the transaction fails (a conflict, a lost
    lease), the rows are held again.
    """
    step = _step.get()
    batches = step.take() if step is not None else []
    try:
        with write_transaction(pool) as conn:
            unsent = [bool(batches)]

            def first(query: str, params: Sequence[Any]) -> Cursor[Any]:
                carried = batches if unsent[0] else []
                unsent[0] = False
                return execute_carrying(conn, carried, query, params)

            yield conn, first
            if unsent[0]:  # the block wrote nothing: the held rows still go, in its transaction
                first("SELECT 1", ())
    except BaseException:
        if step is not None and batches:
            step.hold(batches)
        raise
