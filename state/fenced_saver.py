"""LangGraph's Postgres checkpointers with every write fenced by the thread's lease.

`put` and `put_writes` run their statements in one transaction that first calls
`dealflow_fence(thread, token)` (see `state.leases`): a process that lost the
thread's lease cannot add a checkpoint, so the thread's history never forks.
A write that loses its connection (a terminated backend, a server restart) is
tried again on a fresh one a few times: LangGraph's writes are upserts, so a
repeat is harmless. Reads are LangGraph's own, unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor, Cursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from state.leases import FENCE_SQL, Leases, is_fenced, lease_lost

T = TypeVar("T")
# The thread a write is for, set by put/put_writes for the _cursor they open.
_writing: ContextVar[str | None] = ContextVar("dealflow_writing_thread", default=None)


# Pauses before the repeats of a write whose connection was lost (about 4 s in all).
RECONNECT_PAUSES = (0.2, 0.5, 1.0, 2.0)


def _thread_of(config: RunnableConfig) -> str:
    return str(config["configurable"]["thread_id"])


def _fenced_or_same(exc: psycopg.Error) -> Exception:
    return lease_lost(exc) if is_fenced(exc) else exc


class FencedPostgresSaver(PostgresSaver):
    """`PostgresSaver` whose checkpoint writes fail with `LeaseLost` once the lease is gone."""

    def __init__(self, pool: Any, *, leases: Leases, **kwargs: Any) -> None:
        """On `pool`, fencing with this process's `leases`."""
        super().__init__(pool, **kwargs)
        self.leases = leases

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Save a checkpoint, in the same transaction as the fence check."""
        return self._fenced(config, lambda: super(FencedPostgresSaver, self).put(
            config, checkpoint, metadata, new_versions))

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                   task_id: str, task_path: str = "") -> None:
        """Save a task's pending writes, in the same transaction as the fence check."""
        self._fenced(config, lambda: super(FencedPostgresSaver, self).put_writes(
            config, writes, task_id, task_path))

    def _fenced(self, config: RunnableConfig, write: Callable[[], T]) -> T:
        reset = _writing.set(_thread_of(config))
        try:
            for pause in (*RECONNECT_PAUSES, None):
                try:
                    return write()
                except psycopg.OperationalError:
                    if pause is None:
                        raise
                    time.sleep(pause)
            raise AssertionError("unreachable")
        except psycopg.Error as exc:
            raise _fenced_or_same(exc) from None
        finally:
            _writing.reset(reset)

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[Cursor[DictRow]]:
        """LangGraph's cursor, on a pool connection of the caller's own.

        LangGraph guards every cursor with one process-wide lock, which a single
        shared connection needs but a pool does not: on a pool, concurrent deals
        read and write their checkpoints side by side. A fenced write (`put`,
        `put_writes`) is pipelined in one transaction that checks the lease first.
        """
        if not isinstance(self.conn, ConnectionPool):
            with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        thread = _writing.get()
        with self.conn.connection() as conn:
            if not pipeline:
                with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            elif thread is None:
                with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                with conn.pipeline(), conn.transaction(), \
                        conn.cursor(binary=True, row_factory=dict_row) as cur:
                    cur.execute(FENCE_SQL, (thread, self.leases.token(thread)))
                    yield cur


class FencedAsyncPostgresSaver(AsyncPostgresSaver):
    """The async twin: the same fence, for `ainvoke`/`astream` and LangGraph Server."""

    def __init__(self, pool: Any, *, leases: Leases | None = None, **kwargs: Any) -> None:
        """On `pool`; `leases` are the sync leases this process holds (None: holds none)."""
        super().__init__(pool, **kwargs)
        self.leases = leases

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions
                   ) -> RunnableConfig:
        """Save a checkpoint, in the same transaction as the fence check."""
        return await self._fenced(config, lambda: super(FencedAsyncPostgresSaver, self).aput(
            config, checkpoint, metadata, new_versions))

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        """Save a task's pending writes, in the same transaction as the fence check."""
        await self._fenced(config, lambda: super(FencedAsyncPostgresSaver, self).aput_writes(
            config, writes, task_id, task_path))

    async def _fenced(self, config: RunnableConfig,
                      write: Callable[[], Awaitable[T]]) -> T:
        reset = _writing.set(_thread_of(config))
        try:
            for pause in (*RECONNECT_PAUSES, None):
                try:
                    return await write()
                except psycopg.OperationalError:
                    if pause is None:
                        raise
                    await asyncio.sleep(pause)
            raise AssertionError("unreachable")
        except psycopg.Error as exc:
            raise _fenced_or_same(exc) from None
        finally:
            _writing.reset(reset)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        """The async twin of `FencedPostgresSaver._cursor`: no process-wide lock on a pool."""
        if not isinstance(self.conn, AsyncConnectionPool):
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        thread = _writing.get()
        async with self.conn.connection() as conn:
            if not pipeline:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            elif thread is None:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                token = self.leases.token(thread) if self.leases is not None else None
                async with conn.pipeline(), conn.transaction(), \
                        conn.cursor(binary=True, row_factory=dict_row) as cur:
                    await cur.execute(FENCE_SQL, (thread, token))
                    yield cur
