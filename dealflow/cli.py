"""The `dealflow` command line: a thin layer over `DealService`.

Every command takes `--json` (one JSON object on stdout) and `--database-url`.
Errors print one line on stderr and exit non-zero, having changed nothing.

This module parses the arguments and imports no graph: `dealflow --help` and a
read such as `dealflow threads` start in a fraction of the time LangGraph
takes to import; `dealflow.cli_run` imports what the command needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dealflow.cli_database import announce_embedded
from dealflow.cli_parser import build_parser

if TYPE_CHECKING:
    from dealflow.api import DealService
    from graph.workflow import Workflow

__all__ = ["build_parser", "main"]


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


def _configured_workflow() -> Workflow:
    """The workflow `dealflow event` offers the events of: loaded when first needed."""
    from dealflow.workflow_commands import parser_workflow

    return parser_workflow(None)


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
    parser = build_parser(given.workflow if given is not None else None,
                          load_workflow=_configured_workflow)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    announce_embedded(quiet=bool(getattr(args, "json", False)))  # one stderr line, if started
    from dealflow.cli_run import run_command

    return run_command(args, given, _after_outage)


if __name__ == "__main__":
    sys.exit(main())
