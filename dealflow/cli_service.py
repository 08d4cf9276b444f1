"""The `dealflow` commands that follow or serve: watch, serve, worker, token, mcp, systems.

Each imports what it needs when it runs (`watch` no graph).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from dealflow.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from state.config import Settings


def watch(settings: Settings, args: argparse.Namespace) -> int:
    """`watch`: print a deal's shared-context changes as they commit, until told to stop."""
    from state.database import check_connection, pool_options, resolve_database_url, shared_pool
    from state.fact_store import FactKeyError, split_key
    from state.registry import DealRegistry
    from state.subscriptions import FactSubscription

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


def service_command(settings: Settings, args: argparse.Namespace) -> int:
    """`mcp`, `serve`, `worker`, `token` and `systems`: the service's commands."""
    if args.command == "systems":
        return _systems(settings, args)
    from dealflow.api import DealService

    if args.command == "mcp":
        from dealflow.mcp_server import serve

        with DealService(settings) as service:
            serve(service, args.transport, args.host, args.port, args.allow_host)
        return 0
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
