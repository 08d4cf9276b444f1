"""LangGraph's checkpointer conformance suite against dealflow's own saver (`state.saver`).

`langgraph-checkpoint-conformance` drives the async API (`aput`, `aput_writes`,
`aget_tuple`, `alist`, `adelete_thread`, and the extended capabilities a saver
overrides). The saver holds task writes and checkpoints the run goes on from
until its next write or read, so the suite also checks that what is held is
never missed by a read, a listing or a delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.report import CapabilityReport

from state.checkpointer import make_checkpointer
from state.database import open_pool


def _passes(report: CapabilityReport) -> None:
    report.print_report()
    assert report.passed_all_base(), report.results
    assert report.passed_all(), report.results  # every capability it has, extended ones too


def test_the_saver_passes_langgraph_checkpoint_conformance(database_url: str) -> None:
    pool = open_pool(database_url)

    @checkpointer_test(name="DealSaver")
    async def saver() -> AsyncIterator[object]:
        yield make_checkpointer(pool)

    try:
        _passes(asyncio.run(validate(saver)))
    finally:
        pool.close()
