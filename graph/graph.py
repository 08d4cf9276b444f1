"""The deal graph for LangGraph Server (`langgraph.json`): the graph and its checkpointer.

The server passes no `DealContext`, so this one module builds the context once
from the environment (`DATABASE_URL`, else the embedded server; `DEALFLOW_*`),
on first use, and hands it to the builder. `checkpointer` gives the server
dealflow's own Postgres checkpointer (strict serializer, same tables), so a deal
started through the LangGraph SDK is the same deal the CLI and the service see.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

from graph.builder import build_graph
from graph.runtime import DealContext
from state.checkpointer import make_checkpointer, setup_database
from state.config import Settings
from state.database import resolve_database_url, shared_pool
from state.saver import DealSaver


@cache
def environment() -> tuple[DealContext, DealSaver]:
    """The server's `DealContext` and its checkpointer, on one pool, built once."""
    settings = Settings.from_env()
    pool = shared_pool(resolve_database_url(settings))
    setup_database(pool)
    saver = make_checkpointer(pool)
    return DealContext.on(pool, settings, saver=saver), saver


def context_from_environment() -> DealContext:
    """The server's `DealContext`: pool, schema, systems and data layer, built once."""
    return environment()[0]


@asynccontextmanager
async def checkpointer() -> AsyncIterator[DealSaver]:
    """Dealflow's checkpointer for the server (`checkpointer.path` in langgraph.json)."""
    _, saver = await asyncio.to_thread(environment)  # tables and migrations, once
    yield saver


graph = build_graph(fallback_context=context_from_environment).compile(name="dealflow")
