"""The JSON views of a deal that the CLI's `--json`, the HTTP API and MCP all show.

One function per view, from a `DealService` and plain arguments: the CLI adds
its text rendering beside them, the API answers with them as they are, so the
two never drift apart (and neither calls the other).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from agents.systems import Systems
    from dealflow.api import DealService
    from state.audit import AuditEntry
    from state.registry import DealRow


def thread_json(row: DealRow, active: bool) -> dict[str, Any]:
    """One deal in a list of threads."""
    return {"thread_id": row.thread_id, "deal_id": row.deal_id, "client": row.client,
            "value": str(row.value), "currency": row.currency, "status": row.status,
            "active": active, "updated_at": row.updated_at.isoformat()}


def threads_view(service: DealService, status: str | None, limit: int, cursor: str | None,
                 overdue: bool = False) -> tuple[dict[str, Any], list[tuple[DealRow, bool]]]:
    """A page of threads, most recently updated first, and the rows it shows."""
    rows, following = service.threads_page(status, limit, cursor, overdue=overdue)
    return threads_json(rows, following), rows


def threads_json(rows: list[tuple[DealRow, bool]], following: str | None) -> dict[str, Any]:
    """A page of threads as `threads --json` and the API show it."""
    return {"threads": [thread_json(r, active) for r, active in rows], "next_cursor": following}


def history_view(service: DealService, thread: str) -> dict[str, Any]:
    """Every checkpoint of the thread, oldest first; `pruned`: each prune of its history."""
    from dealflow.prune import pruned_threads

    history = service.history(thread)
    return {"thread": thread, "history": history,
            "pruned": pruned_threads(service.pool, service.deal(thread).thread_id)}


def records_by_branch(systems: Systems, deal_id: str, current: Iterable[str]
                      ) -> dict[str, list[dict[str, Any]]]:
    """What each system holds for the deal, each record marked by the branch it is of.

    `current` if the thread's state uses it (its `effect_keys`: `current`), else
    `superseded` (a branch the thread left by a fork).
    """
    keys = set(current)
    return {label: [{**record, "branch": "current" if record.get("idempotency_key") in keys
                     else "superseded"} for record in records]
            for label, records in systems.records(deal_id).items()}


def records_view(service: DealService, deal: str) -> dict[str, Any]:
    """What each system of record holds for the deal."""
    deal_id = service.deal(deal).deal_id
    return {"deal_id": deal_id, **service.records(deal_id)}


def audit_view(service: DealService, deal: str, agent: str | None = None,
               key: str | None = None) -> tuple[dict[str, Any], list[AuditEntry]]:
    """The deal's audit trail in order (optionally one agent's, or one fact key's)."""
    deal_id = service.deal(deal).deal_id
    entries = service.audit(deal_id, agent=agent, key=key)
    return {"deal_id": deal_id, "entries": [asdict(e) for e in entries]}, entries


def trace_view(service: DealService, thread: str) -> dict[str, Any]:
    """The deal's timeline: its spans, the waits between them and their timers."""
    from dealflow.timeline import trace_json

    row, spans = service.trace(thread)
    return trace_json(row.deal_id, row.thread_id, spans, service.timers(row.thread_id))


VIEWS = {"records": records_view, "history": history_view, "trace": trace_view,
         "audit": lambda service, deal: audit_view(service, deal)[0]}
"""The per-deal views the API serves at `/v1/deals/{id}/<view>`."""
