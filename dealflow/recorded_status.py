"""`dealflow status` and `records` without the graph: what the thread's last run recorded.

Reading a thread's state through LangGraph means importing it, about 0.7 s of a
new process before it connects. So each run that stops (waiting, ended or failed)
records its report beside the thread (`dealflow_deal_reports`, written with the
status by `DealService`), stamped with the thread's latest checkpoint and that
checkpoint's pending writes. `status` prints the recorded report while the stamp
still holds, with the deadlines as they are now; when anything wrote to the
thread since (a run under way, a fork, an edit, a crash), or no report was
recorded, it answers None and the command asks the graph as before. `records`
marks each record current or superseded by the effect keys recorded with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from dealflow.reports import DealReport
    from graph.workflow import Workflow
    from state.config import Settings
    from state.database import Pool


Result = tuple[dict[str, Any], str]  # a command's JSON and its text


def recording(report: DealReport, workflow: Workflow, effect_keys: Iterable[str]
              ) -> dict[str, Any]:
    """What `DealService` records with a report: what `status` and `records` print from.

    The report, the lines the workflow adds to it (what it waits for, the commands to
    go on) and the effect keys of the thread's state (the records that are current).
    """
    from dealflow.render import next_steps, waiting_line

    return {"report": report.model_dump(mode="json"), "waiting": waiting_line(report, workflow),
            "commands": next_steps(report, workflow), "effect_keys": sorted(effect_keys)}


def recorded_status(settings: Settings, ref: str) -> Result | None:
    """`status` of the deal or thread `ref` as recorded: its JSON and its text, or None."""
    from dealflow.cli_database import database_in_use
    from dealflow.render import report_text
    from dealflow.reports import DealReport

    def status(pool: Pool, recorded: dict[str, Any]) -> Result:
        report = DealReport.model_validate(recorded["report"])
        report = report.model_copy(update={"deadlines": _deadlines_now(pool, report)})
        text = report_text(report, recorded["waiting"], recorded["commands"])
        return report.model_dump(mode="json"), f"{text}\ndatabase: {database_in_use(settings)}"

    return _on_recorded(settings, ref, status)


def recorded_records(settings: Settings, ref: str) -> Result | None:
    """`records` of the deal or thread `ref`, current as recorded: its JSON and text, or None."""
    from agents.systems.configured import build_systems
    from dealflow.render import render_records
    from dealflow.views import records_by_branch

    def records(pool: Pool, recorded: dict[str, Any]) -> Result:
        deal_id = recorded["report"]["deal_id"]
        systems = build_systems(pool, settings)
        found = records_by_branch(systems, deal_id, recorded.get("effect_keys", ()))
        return ({"deal_id": deal_id, **found},
                render_records(deal_id, found, systems.record_ids()))

    return _on_recorded(settings, ref, records)


def _on_recorded(settings: Settings, ref: str,
                 read: Callable[[Pool, dict[str, Any]], Result]) -> Result | None:
    """`read` on the report recorded for `ref`, on a pool of its own; None if none holds."""
    from psycopg import errors

    from state.database import open_pool, pool_options, resolve_database_url
    from state.registry import DealRegistry

    url = resolve_database_url(settings)
    pool = open_pool(url, **pool_options(settings.model_copy(update={"database_url": url})))
    try:
        recorded = None if "\x00" in ref else DealRegistry(pool).recorded_report(ref)
        return None if recorded is None else read(pool, recorded)
    except (errors.UndefinedTable, errors.UndefinedColumn, errors.UndefinedFunction):
        return None  # a database not (fully) set up: `DealService` sets it up
    finally:
        pool.close()


def _deadlines_now(pool: Pool, report: DealReport) -> list[dict[str, Any]]:
    """The thread's deadlines still to fire, with what each does as the report said it."""
    from state.audit import AuditTrail
    from state.deadlines import DeadlineBook
    from state.outbox import Outbox

    then = {deadline["name"]: deadline["then"] for deadline in report.deadlines}
    book = DeadlineBook(pool, AuditTrail(pool), Outbox(pool))
    return [{"name": deadline.name, "due_at": deadline.due_at.isoformat(timespec="seconds"),
             "then": then.get(deadline.name, deadline.action)}
            for deadline in book.for_thread(report.thread_id, scheduled_only=True)]
