"""The list of threads, read from the registry and the leases alone.

`DealQueries.threads_page` (the API, MCP) and `dealflow threads` both list
through here; the command does so without the graph or a `DealService`, so it
answers without importing LangGraph.
"""

from __future__ import annotations

from dealflow.errors import InvalidInput
from state.database import Pool
from state.leases import thread_is_held
from state.registry import DealRegistry, DealRow


def threads_page(registry: DealRegistry, pool: Pool, status: str | None = None,
                 limit: int = 100, cursor: str | None = None, *, overdue: bool = False
                 ) -> tuple[list[tuple[DealRow, bool]], str | None]:
    """One page of threads (newest first, each with whether a live process drives it).

    Also the cursor of the next page (None at the end).

    `overdue`: only threads with a deadline past due that has not fired yet.
    """
    try:
        rows, following = registry.page((status,) if status else (), limit, cursor,
                                         overdue=overdue)
    except ValueError as exc:
        raise InvalidInput(f"--cursor: {exc}") from None
    return [(row, driven(pool, row)) for row in rows], following


def driven(pool: Pool, row: DealRow) -> bool:
    """Whether a live process drives the thread (only a running one can be driven)."""
    return row.status == "running" and thread_is_held(pool, row.thread_id)
