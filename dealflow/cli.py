"""The `dealflow` command line: a thin layer over `DealService`.

Every command takes `--json` (one JSON object on stdout) and `--database-url`.
Errors print one line on stderr and exit non-zero, having changed nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import psycopg

from dealflow.api import DealService, parse_deal
from dealflow.errors import DealflowError, InvalidInput
from dealflow.render import (
    describe_step,
    render_audit,
    render_history,
    render_records,
    render_report,
    render_threads,
)
from dealflow.reports import DealReport
from dealflow.timeline import parse_duration, render_stats, render_trace, trace_json
from state.config import ConfigError, Settings
from state.database import DatabaseUnavailable, check_connection, resolve_database_url
from state.deal_state import STATUSES
from state.models import SIGNATURE_EVENTS
from state.subscriptions import ContextSubscription

EPILOG = """examples:
  dealflow run --deal-id D-1001 --client "Acme GmbH" --value 12500
  dealflow resume deal-D-1001 --decision approve --comment "ok for Q4"
  dealflow event deal-D-1001 signature.completed
  dealflow status deal-D-1001 --json

database: --database-url, else DATABASE_URL, else an embedded Postgres in ./.dealflow"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (the contract: one line on stderr)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument("--json", action="store_true", default=default,
                        help="print one JSON object on stdout and nothing else")
    parser.add_argument("--database-url", metavar="URL", default=default,
                        help="Postgres URL (else DATABASE_URL, else the embedded server)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for tests and --help)."""
    parser = _Parser(prog="dealflow", description="Run deals from lead to invoice with "
                     "cooperating agents, durably on Postgres.", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sup = argparse.SUPPRESS

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        _common(command, default=sup)
        return command

    add("demo", "run the showcase deals end to end (small deal, >$50k review, e-sign outage)")
    run = add("run", "start (or return) a deal's thread and run it until it completes or waits")
    run.add_argument("--deal-id", required=True,
                     help="your id for the deal (letters, digits, _.:-)")
    run.add_argument("--client", required=True, help="customer name")
    run.add_argument("--value", required=True, help="deal value, e.g. 12500 or 12500.50")
    run.add_argument("--currency", default="USD", help="USD, EUR, GBP, CAD or AUD (default USD)")
    run.add_argument("--deal-type", default="implementation",
                     help="subscription, implementation or consulting (default implementation)")
    run.add_argument("--lead", type=Path, metavar="FILE.json",
                     help="lead attributes: company_size, budget, industry, engagement, "
                     "contact_name, contact_email, notes")
    run.add_argument("--supervisor", choices=("rules", "llm", "hybrid"), default=None,
                     help="rules (default, no model), llm (OpenAI tool calling, guarded by "
                     "the rules) or hybrid (the model only where the rules allow a choice)")
    resume = add("resume", "answer a thread's pending review")
    resume.add_argument("thread", help="thread id (or deal id)")
    resume.add_argument("--decision", required=True, choices=("approve", "reject", "retry"),
                        help="approve/reject a large deal; retry/reject a failed step")
    resume.add_argument("--comment", default="", help="why (stored with the decision)")
    resume.add_argument("--reviewer", default="operator", help="who decides (default operator)")
    event = add("event", "deliver an external signature event to a waiting thread")
    event.add_argument("thread", help="thread id (or deal id)")
    event.add_argument("event", choices=SIGNATURE_EVENTS, help="the event")
    status = add("status", "show a thread's status, completed steps and pending interrupt")
    status.add_argument("thread", help="thread id (or deal id)")
    threads = add("threads", "list deals and their threads")
    threads.add_argument("--status", choices=STATUSES, help="only threads in this status")
    history = add("history", "list a thread's checkpoints, oldest first")
    history.add_argument("thread", help="thread id (or deal id)")
    records = add("records", "show what each system of record holds for a deal")
    records.add_argument("deal_id", help="deal id")
    audit = add("audit", "show who did what for a deal, in order")
    audit.add_argument("deal_id", help="deal id (or thread id)")
    audit.add_argument("--agent", help="only this agent (lead, project, contract, finance, "
                       "supervisor, human, esign)")
    audit.add_argument("--key", help="only writes of this context key, e.g. D-1.qualified")
    add("recover", "continue every thread whose process died mid-run")
    trace = add("trace", "show a deal's timeline: every step attempt, waits, failures, retries")
    trace.add_argument("thread", help="thread id (or deal id)")
    stats = add("stats", "summarise all deals: statuses, step durations, failures per system")
    stats.add_argument("--since", metavar="DURATION", help="only the last 90s, 30m, 2h, 7d")
    mcp = add("mcp", "serve deal context and reviews to MCP clients (stdio, or HTTP with "
              "--transport http)")
    mcp.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                     help="stdio (default) or streamable HTTP; over HTTP the write tools need "
                     "DEALFLOW_MCP_TOKEN and a matching bearer token")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP host (default 127.0.0.1)")
    mcp.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    watch = add("watch", "follow a deal's shared-context changes as they commit (JSON lines "
                "with --json)")
    watch.add_argument("deal_id", help="deal id")
    watch.add_argument("--key", help="only this key, e.g. D-1.qualified")
    watch.add_argument("--since", type=int, default=0, metavar="CHANGE_ID",
                       help="start after this change id (default: from the beginning)")
    watch.add_argument("--count", type=int, metavar="N", help="stop after N changes")
    watch.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    return parser


def _load_lead(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"--lead: cannot read {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--lead: {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"--lead: {path} must hold a JSON object")
    return data


Progress = Callable[[str, dict[str, Any]], None] | None
Result = tuple[Any, str]


def _report(report: DealReport) -> Result:
    return report.model_dump(mode="json"), render_report(report)


def _cmd_run(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    deal = parse_deal({
        "deal_id": args.deal_id, "client": args.client, "value": args.value,
        "currency": args.currency, "deal_type": args.deal_type, "lead": _load_lead(args.lead),
    })
    return _report(service.start(deal, on_step=progress))


def _cmd_resume(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    answer = {"decision": args.decision, "comment": args.comment, "reviewer": args.reviewer}
    return _report(service.resume(args.thread, answer, on_step=progress))


def _cmd_event(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    return _report(service.event(args.thread, args.event, on_step=progress))


def _cmd_status(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    return _report(service.status(args.thread))


def _cmd_threads(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    rows = service.threads(args.status)
    data = {"threads": [{"thread_id": r.thread_id, "deal_id": r.deal_id, "client": r.client,
                         "value": str(r.value), "currency": r.currency, "status": r.status,
                         "active": active, "updated_at": r.updated_at.isoformat()}
                        for r, active in rows]}
    return data, render_threads(rows)


def _cmd_history(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    checkpoints = service.history(args.thread)
    return {"thread": args.thread, "history": checkpoints}, render_history(checkpoints)


def _cmd_records(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    deal_id = service.deal(args.deal_id).deal_id
    records = service.records(deal_id)
    return {"deal_id": deal_id, **records}, render_records(deal_id, records)


def _cmd_audit(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    deal_id = service.deal(args.deal_id).deal_id
    entries = service.audit(deal_id, agent=args.agent, key=args.key)
    return {"deal_id": deal_id, "entries": [asdict(e) for e in entries]}, render_audit(entries)


def _cmd_recover(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    reports = service.recover(on_step=progress)
    text = "\n\n".join(render_report(r) for r in reports) or "nothing to recover"
    return {"recovered": [r.model_dump(mode="json") for r in reports]}, text


def _cmd_trace(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    row = service.deal(args.thread)
    spans = service.spans.for_thread(row.thread_id)
    return trace_json(row.deal_id, row.thread_id, spans), \
        render_trace(row.deal_id, row.thread_id, spans)


def _cmd_stats(service: DealService, args: argparse.Namespace, progress: Progress) -> Result:
    try:
        since = parse_duration(args.since) if args.since else None
    except ValueError as exc:
        raise InvalidInput(f"--since: {exc}") from None
    statuses = service.spans.deal_statuses(since)
    steps, systems = service.spans.step_stats(since), service.spans.system_stats(since)
    data = {"since": args.since, "deals_by_status": statuses, "steps": steps,
            "systems": systems}
    return data, render_stats(statuses, steps, systems, args.since)


COMMANDS: dict[str, Callable[[DealService, argparse.Namespace, Progress], Result]] = {
    "run": _cmd_run, "resume": _cmd_resume, "event": _cmd_event, "status": _cmd_status,
    "threads": _cmd_threads, "history": _cmd_history, "records": _cmd_records,
    "audit": _cmd_audit, "recover": _cmd_recover, "trace": _cmd_trace, "stats": _cmd_stats,
}


def _watch(settings: Settings, args: argparse.Namespace) -> int:
    url = resolve_database_url(settings)
    check_connection(url)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    seen = 0

    def stop() -> bool:
        return (args.count is not None and seen >= args.count) or (
            deadline is not None and time.monotonic() >= deadline)

    try:
        subscription = ContextSubscription(url, deal_id=None if args.key else args.deal_id,
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


def _print_progress(node: str, update: dict[str, Any]) -> None:
    line = describe_step(node, update)
    if line:
        print(line, flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    supervisor = getattr(args, "supervisor", None)
    return Settings.from_env(database_url=args.database_url, supervisor=supervisor)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        settings = _settings(args)
        if args.command == "watch":
            return _watch(settings, args)
        if args.command == "mcp":
            from dealflow.mcp_server import serve

            with DealService(settings) as service:
                serve(service, args.transport, args.host, args.port)
            return 0
        if args.command == "demo":
            from dealflow.demo import run_demo

            return run_demo(settings, as_json=bool(args.json))
        progress = None if args.json else _print_progress
        with DealService(settings) as service:
            data, text = COMMANDS[args.command](service, args, progress)
    except DatabaseUnavailable as exc:
        print(f"dealflow {args.command}: error: {exc}", file=sys.stderr)
        return 5
    except psycopg.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"dealflow {args.command}: error: lost the database connection ({reason}); "
              "nothing finished is lost: continue with dealflow recover", file=sys.stderr)
        return 5
    except (DealflowError, ConfigError) as exc:
        print(f"dealflow {args.command}: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"dealflow {args.command}: interrupted; the thread resumes from its last "
              "checkpoint (dealflow status)", file=sys.stderr)
        return 130
    print(json.dumps(data, default=str) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
