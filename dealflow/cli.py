"""The `dealflow` command line: a thin layer over `DealService`.

Every command takes `--json` (one JSON object on stdout) and `--database-url`.
Errors print one line on stderr and exit non-zero, having changed nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from dealflow.api import DealService, parse_deal
from dealflow.errors import DealflowError, InvalidInput
from dealflow.render import (
    describe_step,
    render_history,
    render_records,
    render_report,
    render_threads,
)
from state.config import ConfigError, Settings
from state.deal_state import STATUSES
from state.models import SIGNATURE_EVENTS

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
    run.add_argument("--supervisor", choices=("rules", "llm"), default=None,
                     help="router mode (default rules, or DEALFLOW_SUPERVISOR)")
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


def _cmd_run(service: DealService, args: argparse.Namespace, progress: Callable[..., None] | None
             ) -> Any:
    deal = parse_deal({
        "deal_id": args.deal_id, "client": args.client, "value": args.value,
        "currency": args.currency, "deal_type": args.deal_type, "lead": _load_lead(args.lead),
    })
    return service.start(deal, on_step=progress)


def _dispatch(service: DealService, args: argparse.Namespace) -> tuple[Any, str]:
    progress = None if args.json else _print_progress
    command = args.command
    if command == "run":
        report = _cmd_run(service, args, progress)
    elif command == "resume":
        answer = {"decision": args.decision, "comment": args.comment, "reviewer": args.reviewer}
        report = service.resume(args.thread, answer, on_step=progress)
    elif command == "event":
        report = service.event(args.thread, args.event, on_step=progress)
    elif command == "status":
        report = service.status(args.thread)
    elif command == "threads":
        rows = service.threads(args.status)
        data = {"threads": [{"thread_id": r.thread_id, "deal_id": r.deal_id, "client": r.client,
                             "value": str(r.value), "currency": r.currency, "status": r.status,
                             "updated_at": r.updated_at.isoformat()} for r in rows]}
        return data, render_threads(rows)
    elif command == "history":
        entries = service.history(args.thread)
        return {"thread": args.thread, "history": entries}, render_history(entries)
    else:
        deal_id = service.deal(args.deal_id).deal_id
        records = service.records(deal_id)
        return {"deal_id": deal_id, **records}, render_records(deal_id, records)
    return report.model_dump(mode="json"), render_report(report)


def _print_progress(node: str, update: dict[str, Any]) -> None:
    line = describe_step(node, update)
    if line:
        print(line, flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    supervisor = getattr(args, "supervisor", None)
    if supervisor == "llm":
        raise InvalidInput("--supervisor llm is not available in this version; use rules")
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
        if args.command == "demo":
            from dealflow.demo import run_demo

            return run_demo(settings, as_json=bool(args.json))
        with DealService(settings) as service:
            data, text = _dispatch(service, args)
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
