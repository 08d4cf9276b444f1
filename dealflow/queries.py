"""The read side of `DealService`: status, lists, history, records, facts, audit, trace, stats.

Every query reads Postgres (the checkpointer, the registry, the data layer), so
it answers the same in any process, whatever drove the deal.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

from agents.systems import Systems
from dealflow.errors import NotFound
from dealflow.prune_forget import forgotten_note
from dealflow.reports import DealReport, build_report, has_run, starting_report, status_of
from dealflow.thread_list import driven, threads_page
from dealflow.timeline import Timer
from dealflow.views import records_by_branch
from graph.workflow import Workflow
from state.audit import AuditEntry, Origin
from state.data import DataLayer
from state.database import Pool
from state.leases import thread_is_held
from state.registry import DealRegistry, DealRow
from state.spans import Span


class DealQueries:
    """What can be asked about deals; `DealService` adds the commands that change them."""

    pool: Pool
    graph: CompiledStateGraph[Any, Any, Any, Any]
    workflow: Workflow
    systems: Systems
    data: DataLayer
    registry: DealRegistry

    # -- queries ----------------------------------------------------------------
    def status(self, ref: str) -> DealReport:
        """The thread's status, completed steps, pending interrupt and facts."""
        row = self._row(ref)
        snapshot = self.snapshot(row.thread_id)
        if snapshot.created_at is None:
            raise NotFound(f"thread {row.thread_id} has not run yet; start it with dealflow run")
        if has_run(snapshot):
            report = self._with_deadlines(build_report(row.thread_id, snapshot, self.workflow))
        else:  # only its input is checkpointed: the first step is starting
            report = starting_report(row, "starting: its first step has not finished yet")
        if report.status == "running" and not thread_is_held(self.pool, row.thread_id):
            return report.model_copy(update={
                "note": "no process drives it any more: continue it with dealflow recover"})
        return report

    def _with_deadlines(self, report: DealReport) -> DealReport:
        """The report with the thread's deadlines still to fire: when, and what happens."""
        found = []
        for deadline in self.data.deadlines.for_thread(report.thread_id, scheduled_only=True):
            policy = self.workflow.wait_policy(deadline.node) if deadline.node else None
            declared = policy.declared(deadline.name) if policy else None
            then = declared.then if declared else deadline.action
            found.append({"name": deadline.name, "due_at": deadline.due_at.isoformat(
                timespec="seconds"), "then": then})
        return report.model_copy(update={"deadlines": found}) if found else report

    def threads(self, status: str | None = None) -> list[tuple[DealRow, bool]]:
        """Every registered deal, newest first, each with whether a live process drives it."""
        return [(row, self._driven(row)) for row in self.registry.list(status)]

    def threads_page(self, status: str | None = None, limit: int = 100,
                     cursor: str | None = None, *, overdue: bool = False
                     ) -> tuple[list[tuple[DealRow, bool]], str | None]:
        """One page of `threads`, and the cursor of the next page (None at the end).

        `overdue`: only threads with a deadline past due that has not fired yet.
        """
        return threads_page(self.registry, self.pool, status, limit, cursor, overdue=overdue)

    def _driven(self, row: DealRow) -> bool:
        return driven(self.pool, row)

    def history(self, ref: str) -> list[dict[str, Any]]:
        """Every checkpoint of the thread, oldest first (step, node, status, next)."""
        row = self._row(ref)
        entries = []
        for snapshot in self.graph.get_state_history(self._config(row.thread_id)):
            values = snapshot.values if isinstance(snapshot.values, dict) else {}
            metadata = snapshot.metadata or {}
            entries.append({
                "checkpoint_id": snapshot.config["configurable"]["checkpoint_id"],
                "step": metadata.get("step"), "source": metadata.get("source"),
                "created_at": snapshot.created_at, "next": list(snapshot.next),
                "completed_steps": list(values.get("completed_steps", [])),
                "status": status_of(snapshot, self.workflow) if values.get("deal")
                else "running",
            })
        entries.reverse()
        return entries

    def deal(self, ref: str) -> DealRow:
        """The registered deal with this deal id or thread id."""
        return self._row(ref)

    def records(self, ref: str) -> dict[str, list[dict[str, Any]]]:
        """What each system of record holds for the deal (by deal id or thread id).

        A thread forked with other terms leaves records of more than one branch:
        each record says whether the thread's current state uses it
        (`branch: current`) or a branch the thread has left (`superseded`).
        """
        row = self._row(ref)
        snapshot = self.snapshot(row.thread_id)
        values = snapshot.values if isinstance(snapshot.values, dict) else {}
        return records_by_branch(self.systems, row.deal_id, values.get("effect_keys") or {})

    def facts(self, ref: str) -> dict[str, Any]:
        """The deal's shared facts as its agents published them, by key."""
        return {key: fact.value for key, fact in
                self.data.facts.deal(self._row(ref).deal_id).items()}

    def trace(self, ref: str) -> tuple[DealRow, list[Span]]:
        """The deal and the spans of its thread (every node attempt, in start order)."""
        row = self._row(ref)
        return row, self.data.spans.for_thread(row.thread_id)

    def timers(self, thread_id: str) -> list[Timer]:
        """Every deadline the thread's waits set, with the node and time of its wait."""
        waits = {wait.wait_key: wait for wait in self.data.waits.for_thread(thread_id)}
        return [Timer(deadline, waits[deadline.wait_key].node,
                      waits[deadline.wait_key].opened_at)
                for deadline in self.data.deadlines.for_thread(thread_id)
                if deadline.wait_key in waits]

    def stats(self, since: timedelta | None = None) -> dict[str, Any]:
        """Deals by status, and per step and per system: runs, durations, failures, retries."""
        spans = self.data.spans
        return {"deals_by_status": spans.deal_statuses(since), "steps": spans.step_stats(since),
                "systems": spans.system_stats(since)}

    def audited_call(self, ref: str, actor: str, action: str, detail: dict[str, Any]
                     ) -> DealRow:
        """Record in the audit trail that `actor` asked for `action` on a deal; the deal."""
        row = self._row(ref)
        self.data.audit.append(
            Origin(deal_id=row.deal_id, agent=actor.split(":", 1)[0][:50], step=None,
                   thread_id=row.thread_id), action, actor=actor[:200], detail=detail)
        return row

    def audit(self, ref: str, *, agent: str | None = None, key: str | None = None
              ) -> list[AuditEntry]:
        """The deal's audit trail in order, optionally for one agent or context key."""
        deal_id = self._row(ref).deal_id
        if any("\x00" in text for text in (agent or "", key or "")):
            return []  # Postgres text cannot hold NUL, so nothing can match
        return self.data.audit.entries(deal_id, agent=agent, key=key)

    def _config(self, thread_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread_id}}

    def snapshot(self, thread_id: str) -> StateSnapshot:
        """The thread's latest state as LangGraph shows it (`graph.get_state`)."""
        return self.graph.get_state(self._config(thread_id))

    def _row(self, ref: str) -> DealRow:
        row = None if "\x00" in ref else self.registry.find(ref)
        if row is None:  # a deal forgotten (dealflow prune --forget-before) says when, where
            raise NotFound(("\x00" not in ref and forgotten_note(self.pool, ref))
                           or f"no deal or thread {ref!r}")
        return row
