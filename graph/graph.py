"""The deal graph for LangGraph Server (`langgraph.json`): the graph and its checkpointer.

The server passes no `DealContext`, so this one module builds the context once
from the environment (`DATABASE_URL`, else the embedded server; `DEALFLOW_*`),
on first use, and hands it to the builder. `checkpointer` gives the server
dealflow's own Postgres checkpointer (strict serializer, same tables), so a deal
started through the LangGraph SDK is the same deal the CLI and the service see.
The graph is the workflow `DEALFLOW_WORKFLOW` names, else the built-in one.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

from graph.builder import build_graph
from graph.configured import configured_workflow
from graph.runtime import DealContext
from state.checkpointer import make_checkpointer, setup_database
from state.config import Settings
from state.database import close_shared_pools, pool_options, resolve_database_url, shared_pool
from state.embedded import holds_embedded, release
from state.saver import DealSaver


@cache
def environment() -> tuple[DealContext, DealSaver]:
    """The server's `DealContext` and its checkpointer, on one pool, built once."""
    settings = Settings.from_env()
    url = resolve_database_url(settings)
    pool = shared_pool(url, **pool_options(settings.model_copy(update={"database_url": url})))
    setup_database(pool, settings.direct_database_url)
    saver = make_checkpointer(pool, WORKFLOW.state_schema)
    return DealContext.on(pool, settings, saver=saver), saver


def context_from_environment() -> DealContext:
    """The server's `DealContext`: pool, schema, systems and data layer, built once."""
    return environment()[0]


@asynccontextmanager
async def checkpointer() -> AsyncIterator[DealSaver]:
    """Dealflow's checkpointer for the server (`checkpointer.path` in langgraph.json)."""
    _, saver = await asyncio.to_thread(environment)  # tables and migrations, once
    try:
        yield saver
    finally:  # the server's shutdown (SIGTERM included): an embedded Postgres stops with it
        if holds_embedded():
            close_shared_pools()
            release()


WORKFLOW = configured_workflow(Settings.from_env())
graph = build_graph(fallback_context=context_from_environment, workflow=WORKFLOW).compile(
    name="dealflow")
