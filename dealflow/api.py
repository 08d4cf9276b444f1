"""The Python API every entry point uses: start, resume, signal, inspect deals.

One `DealService` holds a connection pool, the compiled graph with the Postgres
checkpointer, the systems of record and the shared data layer. Every method is
safe to call from a fresh process: all state lives in Postgres. A thread is
driven by one process at a time, the holder of its fenced lease
(`state.leases`); the others get `Busy`, and a holder whose lease was taken
over stops at its next write (`OwnershipLost`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command, StateSnapshot
from pydantic import ValidationError

from agents.chat_model import require_llm_settings
from agents.systems import Systems
from dealflow.deadlines import Claimed, apply_claim, claim_wait, fire_deadline, missing_calls
from dealflow.errors import Busy, DealConflict, InvalidInput, OwnershipLost, Unavailable
from dealflow.events import claim_event, deliver_event, waiting_snapshot
from dealflow.notify import Notifier, build_notifier
from dealflow.prune_forget import forgotten_note
from dealflow.queries import DealQueries
from dealflow.recorded_status import recording
from dealflow.reports import (
    DealReport,
    build_report,
    deal_state_of,
    has_run,
    starting_report,
    status_of,
)
from graph.builder import build_graph
from graph.configured import configured_workflow
from graph.nodes import HUMAN_REVIEW, SUPERVISOR
from graph.observe import traced
from graph.review import ReviewAnswerError, approval_args, parse_review_answer, review_kind
from graph.runtime import DealContext
from graph.versions import started_on
from graph.workflow import Workflow
from state.checkpointer import make_checkpointer, setup_database
from state.config import ConfigError, Settings
from state.crash import crashing_checkpointer
from state.database import DatabaseUnavailable, open_pool, pool_options, resolve_database_url
from state.effects import EffectBusy
from state.embedded import EmbeddedPostgresError
from state.leases import Leases, ThreadBusy
from state.models import OPEN_STATUSES, DealInput, SupervisorMode
from state.registry import DealRow, thread_id_for
from state.transactions import LeaseLost
from state.validation import first_error

StepCallback = Callable[[str, dict[str, Any]], None]


def parse_deal(data: dict[str, Any]) -> DealInput:
    """Validate raw deal input, raising `InvalidInput` that names the field."""
    try:
        return DealInput.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid deal: {first_error(exc, 'deal')}") from None


class DealService(DealQueries):
    """Runs deals as durable LangGraph threads on Postgres."""

    def __init__(self, settings: Settings | None = None, *, systems: Systems | None = None,
                 workflow: Workflow | None = None, notifier: Notifier | None = None):
        """Connect (starting the embedded server if no URL is set) and set up the schema.

        `workflow` is the declared process (default: the one the settings name,
        `DEALFLOW_WORKFLOW`, else the built-in one); `systems`
        the systems of record (default: what the settings name, else the sandbox);
        `notifier` delivers notifications when this process runs the service's
        workers (default: a webhook to `DEALFLOW_NOTIFY_URL`, if set).
        """
        settings = settings or Settings.from_env()
        workflow = workflow or configured_workflow(settings)
        try:
            url = resolve_database_url(settings)
            self.settings = settings.model_copy(update={"database_url": url})
            self.pool = open_pool(url, **pool_options(self.settings))
            setup_database(self.pool, self.settings.direct_database_url)  # a session's lock
        except (DatabaseUnavailable, EmbeddedPostgresError) as exc:
            raise Unavailable(str(exc)) from exc
        self.workflow = workflow
        self.leases = Leases(self.pool, seconds=self.settings.lease_seconds)
        saver = make_checkpointer(self.pool, workflow.state_schema, leases=self.leases)
        self.context = DealContext.on(self.pool, self.settings, systems, saver=saver)
        named = [*(s.system for s in workflow.effect_steps), *(p.system for p in workflow.waits)]
        missing = list(dict.fromkeys(name for name in named
                                     if name and name not in self.context.systems.names))
        if missing:
            raise ConfigError(f"the workflow acts on system(s) {', '.join(missing)}, which "
                              f"are not configured ({', '.join(self.context.systems.names)})")
        if missing_calls(workflow, self.context.systems):
            raise ConfigError("the waits' deadlines call what their systems do not have: "
                              f"{', '.join(missing_calls(workflow, self.context.systems))}")
        self.systems, self.data = self.context.systems, self.context.data
        checkpointer = crashing_checkpointer(saver, self.settings.crash_at)
        self.graph = build_graph(self.settings, workflow=workflow).compile(
            checkpointer=checkpointer)
        self.registry = self.data.registry  # one registry: a deal it claims is known to the graph
        self.notifier = notifier or build_notifier(self.settings)

    def close(self) -> None:
        """Stop renewing leases and close the connection pool."""
        self.leases.close()
        self.pool.close()

    def __enter__(self) -> DealService:
        """Use as a context manager that closes the pool."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the pool."""
        self.close()

    # -- commands ---------------------------------------------------------------
    def start(self, deal: DealInput, on_step: StepCallback | None = None,
              supervisor: SupervisorMode | None = None) -> DealReport:
        """Start the deal's thread and run it until it completes or waits.

        Starting a deal id that exists returns its thread (continuing it if a
        previous process died mid-run); different terms for it are refused.
        `supervisor` overrides the settings' mode for a new thread.
        """
        self.require_supervisor(supervisor or self.settings.supervisor)
        row, _ = self.register(deal)
        with self.holding(row.thread_id):
            return self._continue(row, on_step, supervisor)

    def register(self, deal: DealInput) -> tuple[DealRow, bool]:
        """Claim the deal's thread without running it; True if it is new.

        The same deal id with other terms is a `DealConflict`, and so is a forgotten
        deal's id (its thread id and the systems' idempotency keys would be its own).
        """
        forgotten = forgotten_note(self.pool, deal.deal_id)
        if forgotten is not None:
            raise DealConflict(f"{forgotten}; start it under another deal id")
        row, created = self.registry.claim(deal, thread_id_for(deal.deal_id))
        if not created:
            held = self._terms(row)
            if held != deal:
                raise DealConflict(
                    f"deal {deal.deal_id} already exists (thread {row.thread_id}) with different "
                    f"terms ({held.client}, {held.value:,.2f} {held.currency}); see: "
                    f"dealflow status {row.thread_id}")
        return row, created

    def _terms(self, row: DealRow) -> DealInput:
        """The deal's terms as its thread holds them now (a fork may have changed them)."""
        values = self.snapshot(row.thread_id).values
        held = values.get("deal") if isinstance(values, dict) else None
        return held if isinstance(held, DealInput) else DealInput.model_validate(row.input)

    def require_supervisor(self, mode: str) -> None:
        """Refuse (`InvalidInput`) a supervisor mode this process cannot run (the LLM unset)."""
        if mode != "rules":
            try:
                require_llm_settings(self.settings)
            except ConfigError as exc:
                raise InvalidInput(str(exc)) from None

    def resume(
        self, ref: str, answer: dict[str, Any] | str, on_step: StepCallback | None = None
    ) -> DealReport:
        """Answer the pending review of a thread (`approve`, `reject` or `retry`).

        The answer claims the review first: if it expired or was decided meanwhile,
        this is `Decided` (saying what ended it and when) and nothing runs.
        """
        row = self._row(ref)
        with self.holding(row.thread_id):
            snapshot = waiting_snapshot(self, row, HUMAN_REVIEW, "a review", attempt=answer)
            parsed = self._review_answer(row, snapshot, answer)
            claim_wait(self, row, snapshot, parsed.model_dump(), parsed.reviewer)
            return self.drive(row.thread_id, Command(resume=parsed.model_dump()), on_step,
                               snapshot)

    def claim_review(self, ref: str, answer: dict[str, Any] | str) -> Claimed:
        """Claim the pending review for `answer` without running anything (the API's way).

        Refuses what `resume` would refuse (`NotWaiting`, `Decided`, `InvalidInput`);
        a later `resume` with the same answer applies it. The same answer again
        while the claim is not yet applied is not refused: `fresh` is then False.
        """
        row = self._row(ref)
        snapshot = waiting_snapshot(self, row, HUMAN_REVIEW, "a review", attempt=answer)
        parsed = self._review_answer(row, snapshot, answer)
        return Claimed(row, claim_wait(self, row, snapshot, parsed.model_dump(),
                                       parsed.reviewer))

    def claim_event(self, ref: str, event: str) -> Claimed:
        """Claim the wait of the event step that takes `event`, running nothing (the API's way).

        `fresh` is False when the event claimed the wait before (or was applied).
        """
        return claim_event(self, ref, event)

    def apply_claim(self, ref: str) -> str:
        """Apply the answer that claimed the thread's wait but was never applied."""
        return apply_claim(self, self._row(ref).thread_id)

    def fire_deadline(self, deadline_id: int) -> str:
        """Fire a deadline whose time has come, if its wait is still open (the workers' job)."""
        return fire_deadline(self, deadline_id)

    def _review_answer(self, row: DealRow, snapshot: StateSnapshot,
                       answer: dict[str, Any] | str) -> Any:
        state = deal_state_of(snapshot, self.workflow)
        shown = approval_args(state, self.settings)
        try:
            return parse_review_answer(answer, review_kind(state), shown)
        except ReviewAnswerError as exc:
            raise InvalidInput(f"thread {row.thread_id}: {exc}") from None

    def event(self, ref: str, event: str, on_step: StepCallback | None = None) -> DealReport:
        """Deliver an external event (`signature.completed`) to the event step waiting for it."""
        return deliver_event(self, ref, event, on_step)

    def recover(self, on_step: StepCallback | None = None) -> list[DealReport]:
        """Continue every thread that stopped mid-run; skip those a live process drives.

        A thread counts as stopped mid-run by its checkpoint, not by the registry:
        one edited with `update_state` while it waited is listed as waiting but has
        a step to run, and is continued too.
        """
        reports = []
        for row in self.registry.list(statuses=OPEN_STATUSES):
            try:
                report = self._continue_stopped(row, on_step)
            except Busy:
                continue
            if report is not None:
                reports.append(report)
        return reports

    def continue_thread(self, ref: str, on_step: StepCallback | None = None) -> DealReport:
        """Continue one thread if it stopped mid-run; else report where it stands."""
        row = self._row(ref)
        return self._continue_stopped(row, on_step) or self.status(row.thread_id)

    def _continue_stopped(self, row: DealRow, on_step: StepCallback | None
                          ) -> DealReport | None:
        with self.holding(row.thread_id, wait=False):
            snapshot = self.snapshot(row.thread_id)
            current = status_of(snapshot, self.workflow) if snapshot.created_at else "running"
            if current in ("running", "failed"):
                return self._continue(row, on_step)
            if current != row.status:
                self.registry.set_status(row.thread_id, current)
            return None

    # -- primitives (the deadline code drives threads with them) -----------------
    @contextmanager
    def holding(self, thread_id: str, *, wait: bool = True) -> Iterator[None]:
        """Hold the thread's fenced lease for the block; `Busy` if another process holds it.

        `wait`: wait up to `busy_wait_seconds` for it, else give up at once.
        """
        seconds = self.settings.busy_wait_seconds if wait else 0
        try:
            with self.leases.hold(thread_id, wait_seconds=seconds):
                yield
        except ThreadBusy as exc:
            raise Busy(str(exc)) from None

    def _continue(self, row: DealRow, on_step: StepCallback | None,
                  supervisor: SupervisorMode | None = None) -> DealReport:
        snapshot = self.snapshot(row.thread_id)
        if snapshot.created_at is None:
            mode = supervisor or self.settings.supervisor
            self.require_supervisor(mode)
            start = {"deal": DealInput(**row.input), "supervisor": mode,
                     **started_on(self.workflow)}  # the declaration it starts on
            return self.drive(row.thread_id, start, on_step, snapshot,
                               listed_running=row.status == "running")
        status = status_of(snapshot, self.workflow)
        if status in ("running", "failed"):
            # nothing scheduled and no outcome (an edit with update_state at a wait): the
            # supervisor decides again from the edited state
            payload = None if snapshot.next else Command(goto=SUPERVISOR)
            return self.drive(row.thread_id, payload, on_step, snapshot)
        recorded = self.record_status(row.thread_id, snapshot)
        return recorded or build_report(row.thread_id, snapshot, self.workflow)

    def _run_config(self, thread_id: str, start: StateSnapshot, payload: Any) -> RunnableConfig:
        values = start.values if isinstance(start.values, dict) else {}
        deal = values.get("deal") or (payload.get("deal") if isinstance(payload, dict) else None)
        deal_id = deal.deal_id if deal is not None else thread_id
        mode = values.get("supervisor") or self.settings.supervisor
        from_checkpoint = (start.config or {}).get("configurable", {}).get("checkpoint_id")
        return {
            "configurable": {"thread_id": thread_id},
            "run_name": f"deal {deal_id}",
            "metadata": {"deal_id": deal_id, "thread_id": thread_id, "supervisor": mode,
                         "resumed_from_checkpoint": from_checkpoint},
        }

    def drive(self, thread_id: str, payload: Any, on_step: StepCallback | None,
              start: StateSnapshot, *, listed_running: bool = False) -> DealReport:
        """Run the thread from `start` (its current snapshot, read while `holding` it).

        `listed_running`: the registry lists the thread as running already.
        """
        current = start.values
        if isinstance(current, dict) and current.get("supervisor"):
            self.require_supervisor(current["supervisor"])
        config = self._run_config(thread_id, start, payload)
        if not listed_running:
            self.registry.set_status(thread_id, "running")
        owned, recorded = True, None
        try:
            with traced(self.settings, config["metadata"]):
                self._stream(config, payload, on_step)
        except (LeaseLost, EffectBusy) as exc:
            owned = False
            raise OwnershipLost(str(exc)) from None
        finally:
            snapshot = self.snapshot(thread_id)
            if owned and snapshot.created_at is not None:
                recorded = self.record_status(thread_id, snapshot)
        if not has_run(snapshot):  # stopped before its first step was checkpointed
            return starting_report(self._row(thread_id), "stopped before its first step; "
                                   "continue it with dealflow recover")
        return recorded or self._with_deadlines(build_report(thread_id, snapshot, self.workflow))

    def record_status(self, thread_id: str, snapshot: StateSnapshot) -> DealReport | None:
        """Record the status the thread reached, with its report if it stopped after a step.

        Called while holding the thread, after a run or a console's cancel. The report
        (None while running) is what `dealflow status` prints without the graph until
        the thread is written to again, and its effect keys what `records` marks current
        (`dealflow.recorded_status`).
        """
        status = status_of(snapshot, self.workflow)
        if status == "running" or not has_run(snapshot):
            self.registry.set_status(thread_id, status)
            return None
        report = self._with_deadlines(build_report(thread_id, snapshot, self.workflow))
        self.registry.set_status_with_report(
            thread_id, status, snapshot.config["configurable"]["checkpoint_id"],
            recording(report, self.workflow, snapshot.values.get("effect_keys") or {}))
        return report

    def _stream(self, config: RunnableConfig, payload: Any, on_step: StepCallback | None
                ) -> None:
        for chunk in self.graph.stream(payload, config, context=self.context,
                                       stream_mode="updates", durability="sync"):
            for node, update in chunk.items():
                if on_step is not None and node != "__interrupt__":
                    on_step(node, update if isinstance(update, dict) else {})
