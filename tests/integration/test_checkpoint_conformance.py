"""LangGraph's checkpointer conformance suite against dealflow's fenced Postgres savers.

`langgraph-checkpoint-conformance` drives the async API (`aput`, `aput_writes`,
`aget_tuple`, `alist`, `adelete_thread`, and the extended capabilities a saver
overrides). The async saver runs as it is; the sync saver runs behind a thin
async adapter, holding every task's writes for the next checkpoint
(`hold_writes="always"`), so the suite also checks that held writes are never
missed by a read, a listing, a delete or a prune.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import CapabilityReport

from state.checkpointer import checkpoint_serializer, make_async_checkpointer
from state.database import open_async_pool, open_pool
from state.fenced_saver import FencedPostgresSaver
from state.leases import Leases


class HoldingSaverAsAsync(FencedPostgresSaver):
    """The sync saver, its writes always held, with the async methods the suite calls."""

    async def aput(self, *args: Any) -> RunnableConfig:
        return await asyncio.to_thread(self.put, *args)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(self.put_writes, *args, **kwargs)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, **kwargs: Any
                    ) -> AsyncIterator[CheckpointTuple]:
        def listed() -> list[CheckpointTuple]:
            found: Iterator[CheckpointTuple] = self.list(config, **kwargs)
            return list(found)
        for item in await asyncio.to_thread(listed):
            yield item

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def aprune(self, thread_ids: Sequence[str], **kwargs: Any) -> None:
        await asyncio.to_thread(self.prune, thread_ids, **kwargs)


def _passes(report: CapabilityReport) -> None:
    report.print_report()
    assert report.passed_all_base(), report.results
    assert report.passed_all(), report.results  # every capability it has, extended ones too


def test_the_async_fenced_saver_passes_langgraph_checkpoint_conformance(
        database_url: str) -> None:
    async def run() -> CapabilityReport:
        pool = await open_async_pool(database_url)

        @checkpointer_test(name="FencedAsyncPostgresSaver")
        async def fenced_saver() -> AsyncIterator[object]:
            yield make_async_checkpointer(pool)

        try:
            return await validate(fenced_saver)
        finally:
            await pool.close()

    _passes(asyncio.run(run()))


def test_the_sync_saver_holding_writes_passes_langgraph_checkpoint_conformance(
        database_url: str) -> None:
    pool = open_pool(database_url)

    @checkpointer_test(name="FencedPostgresSaver (writes held for the next checkpoint)")
    async def holding_saver() -> AsyncIterator[object]:
        yield HoldingSaverAsAsync(pool, leases=Leases(pool), hold_writes="always",
                                  serde=checkpoint_serializer())

    try:
        _passes(asyncio.run(validate(holding_saver)))
    finally:
        pool.close()
