"""The async twin of `state.fenced_saver`: LangGraph's async Postgres saver, every write fenced.

For `ainvoke`/`astream` and LangGraph Server. Its writes are LangGraph's own
statements in one pipelined transaction after `dealflow_fence(thread, token)`;
it holds nothing for later (`state.held_writes` is the sync saver's).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from state.fenced_saver import RECONNECT_PAUSES, thread_of
from state.leases import FENCE_SQL, Leases
from state.transactions import refusal

T = TypeVar("T")
# The thread a write is for, set by aput/aput_writes for the _cursor they open.
_writing: ContextVar[str | None] = ContextVar("dealflow_async_writing_thread", default=None)


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
        reset = _writing.set(thread_of(config))
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
            raise refusal(exc) from None
        finally:
            _writing.reset(reset)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        """The async twin of `FencedPostgresSaver._cursor`: no process-wide lock on a pool."""
        thread = _writing.get()
        token = self.leases.token(thread) if self.leases is not None and thread else None
        if not isinstance(self.conn, AsyncConnectionPool):  # one shared connection
            if thread is None or not pipeline:
                async with super()._cursor(pipeline=pipeline) as cur:
                    yield cur
                return
            async with super()._cursor() as cur, cur.connection.transaction():
                await cur.execute(FENCE_SQL, (thread, token))
                yield cur
            return
        async with self.conn.connection() as conn:
            if not pipeline:
                async with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            elif thread is None:
                async with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:
                async with conn.pipeline(), conn.transaction(), \
                        conn.cursor(binary=True, row_factory=dict_row) as cur:
                    await cur.execute(FENCE_SQL, (thread, token))
                    yield cur
