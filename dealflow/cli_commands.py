"""The `dealflow` commands that run on a `DealService`: deals, and what the graph shows.

`dealflow.cli_run` imports this module only for these commands: it loads the
graph (LangGraph, the agents), which `--help` and `threads` do without.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from dealflow.api import DealService, parse_deal
from dealflow.edits import edited_answer
from dealflow.errors import InvalidInput
from dealflow.lead_file import load_lead
from dealflow.prune_command import prune_command, render_pruned
from dealflow.render import (
    render_audit,
    render_history,
    render_records,
    render_report,
    threads_text,
)
from dealflow.reports import DealReport
from dealflow.timeline import render_stats, render_trace, trace_json
from dealflow.views import audit_view, history_view, records_view, threads_view
from state.durations import parse_duration

Progress = Callable[[str, dict[str, Any]], None] | None
Result = tuple[Any, str]


def _report(report: DealReport, service: DealService) -> Result:
    return report.model_dump(mode="json"), render_report(report, service.workflow)


def _cmd_run(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    deal = parse_deal({
        "deal_id": args.deal_id, "client": args.client, "value": args.value,
        "currency": args.currency, "deal_type": args.deal_type, "lead": load_lead(args.lead),
    })
    return _report(service.start(deal, on_step=progress), service)


def _cmd_resume(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    answer: dict[str, Any] = {"decision": args.decision, "comment": args.comment,
                              "reviewer": args.reviewer}
    if args.set:
        answer = edited_answer(service, args)
    return _report(service.resume(args.thread, answer, on_step=progress), service)


def _cmd_event(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    return _report(service.event(args.thread, args.event, on_step=progress), service)


def _cmd_status(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    return _report(service.status(args.thread), service)


def _cmd_threads(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    data, rows = threads_view(service, args.status, args.limit, args.cursor,
                              overdue=args.overdue)
    return data, threads_text(data["next_cursor"], rows, args.status, args.overdue)


def _cmd_history(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    data = history_view(service, args.thread)
    pruned = render_pruned(data["pruned"])
    return data, render_history(data["history"]) + (f"\n{pruned}" if pruned else "")


def _cmd_prune(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    return prune_command(service, args)


def _cmd_records(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    data = records_view(service, args.deal_id)
    records = {k: v for k, v in data.items() if k != "deal_id"}
    return data, render_records(data["deal_id"], records, service.systems.record_ids())


def _cmd_audit(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    data, entries = audit_view(service, args.deal_id, agent=args.agent, key=args.key)
    return data, render_audit(entries)


def _cmd_recover(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    reports = service.recover(on_step=progress)
    text = "\n\n".join(render_report(r, service.workflow) for r in reports) or \
        "nothing to recover"
    return {"recovered": [r.model_dump(mode="json") for r in reports]}, text


def _cmd_trace(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    row, spans = service.trace(args.thread)
    timers = service.timers(row.thread_id)
    return trace_json(row.deal_id, row.thread_id, spans, timers), \
        render_trace(row.deal_id, row.thread_id, spans, service.workflow, timers)


def _cmd_stats(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    try:
        since = parse_duration(args.since) if args.since else None
    except ValueError as exc:
        raise InvalidInput(f"--since: {exc}") from None
    stats = service.stats(since)
    data = {"since": args.since, **stats}
    return data, render_stats(stats["deals_by_status"], stats["steps"], stats["systems"],
                              args.since)


COMMANDS: dict[str, Callable[[DealService, argparse.Namespace, Progress], Result]] = {
    "run": _cmd_run, "resume": _cmd_resume, "event": _cmd_event, "status": _cmd_status,
    "threads": _cmd_threads, "history": _cmd_history, "records": _cmd_records,
    "audit": _cmd_audit, "recover": _cmd_recover, "trace": _cmd_trace, "stats": _cmd_stats,
    "prune": _cmd_prune,
}
"""The commands `dealflow.cli_run` runs on a `DealService`, by name."""
