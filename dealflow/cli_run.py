"""Running one parsed `dealflow` command: its settings, its one-line errors, its output.

Each command imports what it needs when it runs: `threads` and `watch` read
Postgres without the graph (no LangGraph import), and so do `status` and `records`
where the thread's last run recorded its report (`dealflow.recorded_status`); the deal commands load
`dealflow.cli_commands` and a `DealService`; the service's own commands load
the service stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from dealflow.cli_database import database_in_use
from dealflow.errors import DealflowError

if TYPE_CHECKING:
    from dealflow.api import DealService
    from state.config import Settings

# Commands that read Postgres without the graph (unless DEALFLOW_WORKFLOW names one to
# check); `status` and `records` ask the graph only when the thread has no recorded report
# that holds (`dealflow.recorded_status`)
WITHOUT_GRAPH = ("threads", "watch", "status", "records")


def run_command(args: argparse.Namespace, given: DealService | None,
                after_outage: Callable[[argparse.Namespace], str]) -> int:
    """Run the command `args` name (on `given`, if set); its exit code, errors on one line."""
    import psycopg

    from dealflow.render import printable
    from state.config import ConfigError
    from state.database import DatabaseUnavailable, PoolExhausted

    try:
        settings = _settings(args)
        if given is None and (settings.workflow or args.command not in WITHOUT_GRAPH):
            from graph.configured import configured_workflow

            configured_workflow(settings)  # a bad DEALFLOW_WORKFLOW stops every command alike
        result = _dispatch(settings, args, given)
        if isinstance(result, int):
            return result
        data, text = result
    except DatabaseUnavailable as exc:
        print(f"dealflow {args.command}: error: {exc}", file=sys.stderr)
        return 5
    except PoolExhausted as exc:
        print(f"dealflow {args.command}: error: {exc}; {after_outage(args)}", file=sys.stderr)
        return 5
    except psycopg.OperationalError as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"dealflow {args.command}: error: lost the database connection ({reason}); "
              f"{after_outage(args)}", file=sys.stderr)
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


def _dispatch(settings: Settings, args: argparse.Namespace,
              given: DealService | None) -> int | tuple[Any, str]:
    """The command's exit code (it printed its own output), or its JSON and its text."""
    if args.command == "workflow":
        from dealflow.workflow_commands import workflow_command

        return workflow_command(settings, args, given)
    if args.command == "watch":
        from dealflow.cli_service import watch

        return watch(settings, args)
    if args.command in ("mcp", "serve", "worker", "token", "systems"):
        from dealflow.cli_service import service_command

        return service_command(settings, args)
    if args.command == "demo":
        from dealflow.demo import run_demo

        return run_demo(settings, as_json=bool(args.json))
    if args.command in ("status", "records") and given is None:
        from dealflow.recorded_status import recorded_records, recorded_status

        recorded = (recorded_status(settings, args.thread) if args.command == "status"
                    else recorded_records(settings, args.deal_id))
        if recorded is not None:
            return recorded
    if args.command == "threads" and given is None:
        found = _threads(settings, args)
        if found is not None:
            return found
    return _on_service(settings, args, given)


def _on_service(settings: Settings, args: argparse.Namespace,
                given: DealService | None) -> tuple[Any, str]:
    """A deal or inspection command on a `DealService` (`given`, or one of `settings`)."""
    from dealflow.api import DealService
    from dealflow.cli_commands import COMMANDS
    from dealflow.render import progress_printer

    with nullcontext(given) if given is not None else DealService(settings) as service:
        progress = None if args.json else progress_printer(service.workflow)
        data, text = COMMANDS[args.command](service, args, progress)
        if args.command == "status":  # which database it read (a password masked); the
            # JSON stays the view the HTTP API and MCP share, which must not name it
            where = database_in_use(settings if given is None else service.settings)
            text += f"\ndatabase: {where}"
    return data, text


def _threads(settings: Settings, args: argparse.Namespace) -> tuple[Any, str] | None:
    """`threads` from the registry and the leases, without the graph.

    None on a database whose schema is not (fully) there yet: `DealService` sets it up.
    """
    from psycopg import errors

    from dealflow.render import threads_text
    from dealflow.thread_list import threads_page
    from dealflow.views import threads_json
    from state.database import open_pool, pool_options, resolve_database_url
    from state.registry import DealRegistry

    url = resolve_database_url(settings)
    pool = open_pool(url, **pool_options(settings.model_copy(update={"database_url": url})))
    try:
        rows, following = threads_page(DealRegistry(pool), pool, args.status, args.limit,
                                       args.cursor, overdue=args.overdue)
    except (errors.UndefinedTable, errors.UndefinedColumn, errors.UndefinedFunction):
        return None
    finally:
        pool.close()
    return threads_json(rows, following), threads_text(following, rows, args.status,
                                                       args.overdue)


def _settings(args: argparse.Namespace) -> Settings:
    from state.config import Settings

    supervisor = getattr(args, "supervisor", None)
    return Settings.from_env(database_url=args.database_url, supervisor=supervisor)
