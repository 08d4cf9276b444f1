"""The `dealflow` argument parser: every command, its flags and their help."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dealflow.arg_errors import Later, OneLineParser
from dealflow.cli_database import database_from_env
from state.numerals import decimal_number, whole_number

if TYPE_CHECKING:
    from graph.workflow import Workflow

# `state.models.STATUSES` without importing pydantic (0.1 s of `--help`): test_cli_imports
STATUSES = ("running", "waiting_review", "waiting_signature", "waiting_event", "completed",
            "disqualified", "declined", "rejected", "expired", "failed", "cancelled")

EPILOG = """examples:
  dealflow run --deal-id D-1001 --client "Acme GmbH" --value 12500 --lead examples/lead.json
  dealflow resume D-1001 --decision approve --comment "ok for Q4"
  dealflow event D-1001 signature.completed
  dealflow status D-1001 --json

database: --database-url, else DATABASE_URL, else the embedded Postgres in DEALFLOW_DATA_DIR
  (default: the platform's user data folder, $XDG_DATA_HOME/dealflow or
  ~/.local/share/dealflow on Linux: one per user, whatever folder you are in; a command that
  starts it says so on stderr); here: {database}

exit codes: 0 done; 1 a system check failed; 2 bad input or flag; 3 unknown deal or thread;
  4 not waiting for that (or the deal id has other terms); 5 Postgres unreachable; 6 another
  process drives the thread; 7 cannot listen on --host/--port (in use); 70 the workers
  stopped for good; 130 interrupted"""


# argparse with one-line errors (the contract: one line on stderr) that name a mistyped
# flag, and the flag meant, before any argument it left missing; and a help that names
# the workflow's events and agents and the database only when it is shown
_Parser = OneLineParser


def _common(parser: argparse.ArgumentParser, default: Any = None) -> None:
    parser.add_argument("--json", action="store_true", default=default,
                        help="print one JSON object on stdout and nothing else")
    parser.add_argument("--database-url", metavar="URL", default=default,
                        help="Postgres URL (else DATABASE_URL, else the embedded server)")


AddCommand = Callable[[str, str], argparse.ArgumentParser]


def _typed(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse `type=` from `parse`: its ValueError becomes argparse's one-line error."""
    def typed(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    typed.__name__ = parse.__name__
    return typed


_whole = _typed(whole_number)  # 42, never 1_000 or ١٠ (see state.numerals)
_number = _typed(decimal_number)


def _imported(module: str, name: str) -> Callable[[str], Any]:
    """`module.name` as a flag's parser, imported only when such a flag is given."""
    def parse(text: str) -> Any:
        return getattr(import_module(module), name)(text)

    parse.__name__ = name
    return parse


_duration = _typed(_imported("state.durations", "parse_duration"))  # imports pydantic


def _page_size(text: str) -> int:
    size: int = _whole(text)
    if not 1 <= size <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1000, got {size}")
    return size


def _default_workflow() -> Workflow:
    from graph.workflow import DEFAULT_WORKFLOW

    return DEFAULT_WORKFLOW


def build_parser(workflow: Workflow | None = None, *,
                 load_workflow: Callable[[], Workflow] = _default_workflow
                 ) -> argparse.ArgumentParser:
    """The full argument parser of the CLI over `workflow` (exposed for tests and --help).

    Without `workflow`, `load_workflow()` gives it when first needed (an event's
    name to check, a help that names the agents): building and parsing import no
    graph, so a command that needs none starts fast.
    """
    load = load_workflow if workflow is None else (lambda: workflow)
    parser = _Parser(prog="dealflow", description="Run deals from lead to invoice with "
                     "cooperating agents, durably on Postgres.",
                     epilog=EPILOG.format(database="see dealflow --help"),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.on_help = lambda: setattr(parser, "epilog", EPILOG.format(database=database_from_env()))
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        _common(command, default=argparse.SUPPRESS)
        return command

    _deal_commands(add, load)
    _inspection_commands(add, load)
    _retention_commands(add)
    _service_commands(add)
    _server_commands(add)
    _workflow_commands(add)
    return parser


def _deal_commands(add: AddCommand, workflow: Callable[[], Workflow]) -> None:
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
    resume.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="with --decision approve: approve on an edited term of the deal "
                        "(value=40000.00, payment_terms_days=45); repeat for several")
    event = add("event", "deliver an external event (a signature) to a thread waiting for it")
    event.add_argument("thread", help="thread id (or deal id)")
    named = event.add_argument("event", choices=Later(lambda: workflow().events),
                               metavar="event", help="the event")  # no choices read yet
    if isinstance(event, OneLineParser):  # its help lists them, as argparse does
        event.on_help = lambda: setattr(named, "metavar", None)
    add("recover", "continue every thread whose process died mid-run")


def _inspection_commands(add: AddCommand, workflow: Callable[[], Workflow]) -> None:
    status = add("status", "show a thread's status, completed steps and pending interrupt")
    status.add_argument("thread", help="thread id (or deal id)")
    threads = add("threads", "list deals and their threads")
    threads.add_argument("--status", choices=STATUSES, help="only threads in this status")
    threads.add_argument("--limit", type=_page_size, default=100, metavar="N",
                         help="at most N threads per page, 1-1000 (default 100); a cut "
                         "list ends with the command that shows the next page")
    threads.add_argument("--cursor", metavar="CURSOR",
                         help="continue after the page that printed this cursor")
    threads.add_argument("--overdue", action="store_true",
                         help="only threads with a deadline past due that has not fired "
                         "(no worker is running, or the workers are behind)")
    history = add("history", "list a thread's checkpoints, oldest first")
    history.add_argument("thread", help="thread id (or deal id)")
    records = add("records", "show what each system of record holds for a deal")
    records.add_argument("deal_id", help="deal id")
    audit = add("audit", "show who did what for a deal, in order")
    audit.add_argument("deal_id", help="deal id (or thread id)")
    agent = audit.add_argument("--agent", help="only this agent (the workflow's, or mcp)")
    if isinstance(audit, OneLineParser):
        audit.on_help = lambda: setattr(agent, "help", "only this agent (" + ", ".join(
            workflow().agents) + ", or mcp)")
    audit.add_argument("--key", help="only writes of this context key, e.g. D-1.qualified")
    trace = add("trace", "show a deal's timeline: every step attempt, waits, failures, retries")
    trace.add_argument("thread", help="thread id (or deal id)")
    stats = add("stats", "summarise all deals: statuses, step durations, failures per system")
    stats.add_argument("--since", metavar="DURATION", help="only the last 90s, 30m, 2h, 7d")


PRUNE_EPILOG = """what goes: the checkpoint history (LangGraph's checkpoints, checkpoint_blobs and
checkpoint_writes rows) of deals that ended (completed, declined, rejected, expired,
disqualified) at least --ended-before ago, but the latest checkpoint of each, the blobs
it names and its pending writes: status, records and resume read as before.
what stays: the registry, the audit trail, the effect ledger, facts, spans and the
systems' records; waiting and running deals; a thread another process holds; a thread
whose latest checkpoint has steps to run (a fork or an edit since it ended).
Batches of --batch deals, one transaction each: interrupt it any time, run it again to
finish; two prunes at once never take the same deal. Progress on stderr (a terminal).
--forget-before (a longer age, e.g. 7y): a deal that ended that long ago is forgotten
whole: every row dealflow and LangGraph hold of it (registry, audit trail, effect
ledger, facts, spans, waits, deadlines, outbox, checkpoints) goes to its archive, then
is deleted; a tombstone stays (status and history say when, and name the archive). It
needs --archive DIR, or --no-archive to forget without one. The systems' records (the
CRM, e-signature, billing) are theirs: never touched.

examples:
  dealflow prune --ended-before 90d --dry-run
  dealflow prune --ended-before 90d --archive /var/backups/dealflow-history
  dealflow history D-1001     # says when it was pruned and names the archive
  dealflow prune --forget-before 7y --archive /var/backups/dealflow-forgotten"""


def _retention_commands(add: AddCommand) -> None:
    prune = add("prune", "delete the checkpoint history of deals that ended long ago, keeping "
                "each deal's latest checkpoint and everything else about it")
    prune.formatter_class = argparse.RawDescriptionHelpFormatter
    prune.description = ("delete the checkpoint history of deals that ended long ago, keeping\n"
                         "each deal's latest checkpoint and everything else about it")
    prune.epilog = PRUNE_EPILOG
    prune.add_argument("--ended-before", type=_duration, metavar="DURATION",
                       help="only deals that ended at least this long ago: 0s, 90s, 30m, 12h, "
                       "90d (default: DEALFLOW_RETENTION; one of the two is required)")
    prune.add_argument("--archive", type=Path, metavar="DIR",
                       help="first write each deal's history to DIR/<thread>.<kept checkpoint>"
                       ".jsonl.gz (gzip JSON Lines, a checkpoint a line, blobs in base64; "
                       "dealflow.archive.read_archive reads it back); a forgotten deal's, "
                       "every row it had, to DIR/<thread>.<last checkpoint>.forgotten.jsonl.gz")
    prune.add_argument("--forget-before", type=_duration, metavar="AGE",
                       help="also forget, whole, deals that ended at least this long ago: "
                       "7y, 2555d (default: DEALFLOW_FORGET_AFTER; at least --ended-before)")
    prune.add_argument("--no-archive", action="store_true",
                       help="forget without an archive (else --forget-before needs --archive)")
    prune.add_argument("--dry-run", action="store_true",
                       help="count what would be deleted, per deal; change nothing")
    prune.add_argument("--batch", type=_page_size, default=100, metavar="N",
                       help="deals per transaction, 1-1000 (default 100)")


def _server_commands(add: AddCommand) -> None:
    serve = add("serve", "serve the HTTP API (OpenAPI at /openapi.json) with in-process workers")
    serve.add_argument("--host", default="127.0.0.1", help="host (default 127.0.0.1)")
    serve.add_argument("--port", type=_whole, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=_whole, default=2, metavar="N",
                       help="in-process workers (default 2; 0 for an API-only node)")
    worker = add("worker", "run workers only: they take jobs from the shared Postgres queue")
    worker.add_argument("--concurrency", type=_whole, default=2, metavar="N",
                        help="jobs at once (default 2)")
    token = add("token", "create, list or revoke API tokens (stored hashed; shown once)")
    actions = token.add_subparsers(dest="token_action", metavar="ACTION", required=True,
                                   parser_class=_Parser)
    create = actions.add_parser("create", help="print a new token once")
    create.add_argument("--role", required=True, choices=("operator", "reviewer"),
                        help="operator: everything; reviewer: reads and review decisions")
    create.add_argument("--name", required=True, help="who holds it (audit trail name)")
    create.add_argument("--expires-in", type=_duration, default=None, metavar="DURATION",
                        help="refuse it after 90s, 30m, 12h, 30d (default: never expires); "
                        "inbox sessions end with it")
    create.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help='print {"token": ..., "expires_at": ...}')
    listing = actions.add_parser("list", help="every token: role, state, created, expires")
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help='print {"tokens": [...]}')
    revoke = actions.add_parser("revoke", help="revoke a token by name, at once")
    revoke.add_argument("name", help="the token's name")
    systems = add("systems", "check or set up the systems of record the configuration names "
                  "(DEALFLOW_CRM, DEALFLOW_PM, DEALFLOW_ESIGN, DEALFLOW_BILLING)")
    systems.add_argument("systems_action", choices=("check", "setup"), metavar="ACTION",
                         help="check: one harmless authenticated call to each provider, "
                         "creating nothing; setup: create what the connectors need at the "
                         "provider (HubSpot's deal properties), idempotently")


def _workflow_commands(add: AddCommand) -> None:
    command = add("workflow", "show the declared workflow and its version, or check the "
                  "unfinished deals against it before a deploy")
    actions = command.add_subparsers(dest="workflow_action", metavar="ACTION", required=True,
                                     parser_class=_Parser)
    show = actions.add_parser("show", help="the declaration (DEALFLOW_WORKFLOW, else the "
                              "built-in one): steps, waits, renames, removals, and its version")
    check = actions.add_parser("check", help="what every unfinished deal does next under this "
                               "declaration; exit 1 if one cannot go on as it is")
    for action in (show, check):
        _common(action, default=argparse.SUPPRESS)


def _service_commands(add: AddCommand) -> None:
    mcp = add("mcp", "serve deal context and reviews to MCP clients (stdio, or HTTP with "
              "--transport http)")
    mcp.add_argument("--transport", choices=("stdio", "http"), default="stdio",
                     help="stdio (default) or streamable HTTP; with DEALFLOW_MCP_TOKEN set, "
                     "every HTTP request (reads too) needs 'Authorization: Bearer <token>' and "
                     "the write tools are offered; without it HTTP offers the read tools only")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP host (default 127.0.0.1)")
    mcp.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                     help="a Host/Origin name clients may use besides localhost (DNS-rebinding "
                     "protection; repeat for several), e.g. deals.example.com")
    mcp.add_argument("--port", type=_whole, default=8765, help="HTTP port (default 8765)")
    watch = add("watch", "follow a deal's shared-context changes as they commit (JSON lines "
                "with --json)")
    watch.add_argument("deal_id", help="deal id")
    watch.add_argument("--key", help="only this key, e.g. D-1.qualified")
    watch.add_argument("--since", type=_whole, default=0, metavar="CHANGE_ID",
                       help="start after this change id (default: from the beginning)")
    watch.add_argument("--count", type=_whole, metavar="N", help="stop after N changes")
    watch.add_argument("--seconds", type=_number, metavar="S", help="stop after S seconds")
