"""The `dealflow` command line: a thin layer over `DealService`.

Every command takes `--json` (one JSON object on stdout) and `--database-url`.
Errors print one line on stderr and exit non-zero, having changed nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict
from typing import Any

import psycopg

from dealflow.api import DealService, parse_deal
from dealflow.cli_database import announce_embedded
from dealflow.cli_parser import build_parser
from dealflow.edits import edited_answer
from dealflow.errors import DealflowError, InvalidInput, NotFound
from dealflow.lead_file import load_lead
from dealflow.prune_command import prune_command, render_pruned
from dealflow.render import (
    printable,
    progress_printer,
    render_audit,
    render_history,
    render_records,
    render_report,
    render_threads,
)
from dealflow.reports import DealReport
from dealflow.timeline import render_stats, render_trace, trace_json
from dealflow.views import audit_view, history_view, records_view, threads_view
from dealflow.workflow_commands import parser_workflow, workflow_command
from graph.configured import configured_workflow
from state.config import ConfigError, Settings
from state.database import (
    DatabaseUnavailable,
    PoolExhausted,
    check_connection,
    pool_options,
    resolve_database_url,
    shared_pool,
)
from state.durations import parse_duration
from state.fact_store import FactKeyError, split_key
from state.registry import DealRegistry
from state.subscriptions import FactSubscription

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
    overdue = args.overdue
    data, rows = threads_view(service, args.status, args.limit, args.cursor, overdue=overdue)
    text = render_threads(rows)
    if data["next_cursor"]:
        text += (f"\n… more threads (this page shows {len(rows)}): dealflow threads "
                 f"{'--status ' + args.status + ' ' if args.status else ''}"
                 f"{'--overdue ' if overdue else ''}--cursor {data['next_cursor']}")
    return data, text


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


def _watch(settings: Settings, args: argparse.Namespace) -> int:
    url = resolve_database_url(settings)
    check_connection(url)
    try:
        deal_id = split_key(args.key)[0] if args.key else args.deal_id
    except FactKeyError as exc:
        raise InvalidInput(f"--key: {exc}") from None
    options = pool_options(settings.model_copy(update={"database_url": url}))
    if DealRegistry(shared_pool(url, **options)).find(deal_id) is None:
        raise NotFound(f"no deal {deal_id!r:.80}; see dealflow threads")
    deadline = time.monotonic() + args.seconds if args.seconds else None
    seen = 0

    def stop() -> bool:
        return (args.count is not None and seen >= args.count) or (
            deadline is not None and time.monotonic() >= deadline)

    try:
        subscription = FactSubscription(  # LISTEN: a session's, so on the direct URL
            settings.direct_database_url or url, deal_id=None if args.key else args.deal_id,
            key=args.key, after=args.since, poll_seconds=0.2)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    def reconnecting(last: int) -> None:
        print(f"dealflow watch: connection lost; reconnecting, catching up after change {last}",
              file=sys.stderr, flush=True)

    for change in subscription.follow(stop, reconnecting):
        seen += 1
        if args.json:
            print(json.dumps(asdict(change), default=str), flush=True)
        else:
            print(f"#{change.change_id} {change.written_at:%H:%M:%S} {change.key} "
                  f"v{change.version} by {change.writer}: {json.dumps(change.value)}",
                  flush=True)
    return 0




def _server(settings: Settings, args: argparse.Namespace) -> int:
    """`serve`, `worker` and `token`: the service's commands."""
    from dealflow.service import listen, run
    from dealflow.service.token_commands import token_command

    sock = listen.bind(args.host, args.port) if args.command == "serve" else None  # 7: in use
    with DealService(settings) as service:
        if args.command == "serve":
            print(f"dealflow serve: http://{args.host}:{args.port} (OpenAPI: /openapi.json, "
                  f"docs: /docs), {args.workers} worker(s)", file=sys.stderr, flush=True)
            run.serve(service, args.host, args.port, args.workers, sock=sock)
        elif args.command == "worker":
            run.work(service, args.concurrency)
        else:
            data, text = token_command(service.pool, args)
            print(json.dumps(data) if args.json else text)
    return 0


def _systems(settings: Settings, args: argparse.Namespace) -> int:
    """`systems check|setup`: one line per system; exit 1 if any failed."""
    from agents.systems.providers import each_provider

    results = each_provider(settings, args.systems_action)
    failed = [r for r in results if not r["ok"]]
    if args.json:
        print(json.dumps({"ok": not failed, "systems": results}))
    else:
        for r in results:
            print(f"{r['system']:<8} {r['provider']:<9} {'ok' if r['ok'] else 'FAILED':<7} "
                  f"{r['said']}")
    for r in failed:
        print(f"dealflow systems {args.systems_action}: error: {r['system']} "
              f"({r['provider']}): {r['said']}", file=sys.stderr)
    return 1 if failed else 0


def _after_outage(args: argparse.Namespace) -> str:
    """The true next step after the database went away mid-command."""
    if args.command == "run":
        return (f"every finished step is kept: run the same command again to continue "
                f"(dealflow status {args.deal_id} shows where it is)")
    if args.command == "resume":
        return (f"the decision may not have been recorded: dealflow status {args.thread} "
                "shows whether it still waits for a review (then answer again)")
    if args.command == "event":
        return (f"the event may not have been recorded: send it again (dealflow event "
                f"{args.thread} {args.event}); a repeat of a delivered event is harmless")
    if args.command == "recover":
        return "every finished step is kept: run dealflow recover again"
    if args.command == "prune":
        return "the batches done before are kept: run the same command again to finish"
    return "nothing was changed: run the same command again"


def _quiet_libraries() -> None:
    """Library log lines (psycopg_pool's reconnect warnings) are not for the terminal."""
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)


def _settings(args: argparse.Namespace) -> Settings:
    supervisor = getattr(args, "supervisor", None)
    return Settings.from_env(database_url=args.database_url, supervisor=supervisor)


def main(argv: Sequence[str] | None = None, *, service: DealService | None = None) -> int:
    """Run the CLI; return the exit code (quietly 0 when stdout's reader went away).

    `service`: run the deal and inspection commands on it (its workflow and
    systems; left open) instead of a service of the default workflow.
    """
    try:
        code = _main(argv, service)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # `dealflow threads | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(argv: Sequence[str] | None, given: DealService | None) -> int:
    _quiet_libraries()
    parser = build_parser(parser_workflow(given))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    announce_embedded(quiet=bool(getattr(args, "json", False)))  # one stderr line, if started
    try:
        settings = _settings(args)
        if given is None:
            configured_workflow(settings)  # a bad DEALFLOW_WORKFLOW stops every command alike
        if args.command == "workflow":
            return workflow_command(settings, args, given)
        if args.command == "watch":
            return _watch(settings, args)
        if args.command == "mcp":
            from dealflow.mcp_server import serve

            with DealService(settings) as service:
                serve(service, args.transport, args.host, args.port, args.allow_host)
            return 0
        if args.command == "systems":
            return _systems(settings, args)
        if args.command in ("serve", "worker", "token"):
            return _server(settings, args)
        if args.command == "demo":
            from dealflow.demo import run_demo

            return run_demo(settings, as_json=bool(args.json))
        with nullcontext(given) if given is not None else DealService(settings) as service:
            progress = None if args.json else progress_printer(service.workflow)
            data, text = COMMANDS[args.command](service, args, progress)
    except DatabaseUnavailable as exc:
        print(f"dealflow {args.command}: error: {exc}", file=sys.stderr)
        return 5
    except PoolExhausted as exc:
        print(f"dealflow {args.command}: error: {exc}; {_after_outage(args)}", file=sys.stderr)
        return 5
    except psycopg.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"dealflow {args.command}: error: lost the database connection ({reason}); "
              f"{_after_outage(args)}", file=sys.stderr)
        return 5
    except (DealflowError, ConfigError) as exc:
        print(f"dealflow {args.command}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"dealflow {args.command}: interrupted; the thread resumes from its last "
              "checkpoint (dealflow status)", file=sys.stderr)
        return 130
    print(json.dumps(data, default=str) if args.json else printable(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
