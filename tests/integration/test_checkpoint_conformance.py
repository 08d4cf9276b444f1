"""LangGraph's checkpointer conformance suite against dealflow's fenced Postgres saver.

`langgraph-checkpoint-conformance` drives the async API (`aput`, `aput_writes`,
`aget_tuple`, `alist`, `adelete_thread`, and the extended capabilities the
saver overrides); the sync saver shares every write path with it (`_cursor`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import CapabilityReport

from state.checkpointer import make_async_checkpointer
from state.database import open_async_pool


def test_the_fenced_saver_passes_langgraph_checkpoint_conformance(database_url: str) -> None:
    async def run() -> CapabilityReport:
        pool = await open_async_pool(database_url)

        @checkpointer_test(name="FencedAsyncPostgresSaver")
        async def fenced_saver() -> AsyncIterator[object]:
            yield make_async_checkpointer(pool)

        try:
            return await validate(fenced_saver)
        finally:
            await pool.close()

    report = asyncio.run(run())
    report.print_report()
    assert report.passed_all_base(), report.results
    assert report.passed_all(), report.results  # every capability it has, extended ones too
