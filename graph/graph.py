"""The compiled deal graph for LangGraph Server (`langgraph.json`), without a checkpointer.

The server brings its own checkpointer and passes no `DealContext`, so this one
module builds the context once from the environment (`DATABASE_URL`, else the
embedded server; `DEALFLOW_*`), on first use, and hands it to the builder.
"""

from functools import cache

from graph.builder import build_graph
from graph.runtime import DealContext
from state.config import Settings
from state.database import resolve_database_url, shared_pool
from state.migrate import apply_migrations


@cache
def context_from_environment() -> DealContext:
    """The server's `DealContext`: pool, schema, systems and data layer, built once."""
    settings = Settings.from_env()
    pool = shared_pool(resolve_database_url(settings))
    apply_migrations(pool)
    return DealContext.on(pool, settings)


graph = build_graph(fallback_context=context_from_environment).compile(name="dealflow")
