"""`dealflow serve` and `dealflow worker`: the API on uvicorn, workers on procrastinate.

Any number of both, on any number of machines, share one Postgres. `serve`
runs `--workers N` workers in its own process (0: an API-only node); `worker`
runs workers only. Each process holds one `DealService`, handed to the jobs.
Workers ride out database restarts and outages (`worker_loop.supervise`); a
process whose workers cannot go on exits with `WORKERS_FAILED_EXIT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import procrastinate
import uvicorn
from fastapi import FastAPI

from dealflow.api import DealService
from dealflow.prune_forget import forget_settings
from dealflow.service import listen
from dealflow.service.http import build_app
from dealflow.service.jobs import apply_queue_schema, build_queue, run_workers
from dealflow.service.worker_loop import WorkerHealth, WorkersFailed, supervise

WORKERS_FAILED_EXIT = 70  # EX_SOFTWARE: the workers stopped for good; a supervisor restarts
_log = logging.getLogger(__name__)


def worker_options(service: DealService, concurrency: int) -> dict[str, Any]:
    """Worker settings: the service for the jobs, heartbeats well inside the stall limit.

    No signal handlers of procrastinate's: a worker that stopped on its own is
    restarted, so the process stops its workers itself (cancelling them).
    """
    stalled = service.settings.worker_stalled_seconds
    return {"concurrency": concurrency, "additional_context": {"service": service},
            "install_signal_handlers": False, "update_heartbeat_interval": stalled / 4,
            "stalled_worker_timeout": stalled, "fetch_job_polling_interval": 1.0,
            "name": f"dealflow-{service.leases.owner}"}


def open_queue(service: DealService) -> procrastinate.App:
    """The queue on the service's database, its tables created if missing.

    The scheduled forget's settings are checked first: a bad one stops the process
    at its start with one line, not its first scheduled run.
    """
    assert service.settings.database_url
    forget_settings(service.settings)
    queue = build_queue(service.settings.database_url, service.settings)
    apply_queue_schema(service, queue)
    return queue


def service_app(service: DealService, workers: int,
                on_failure: Callable[[str], None] | None = None) -> FastAPI:
    """The API, running `workers` in-process workers for as long as it serves.

    The workers ride out database outages; if they cannot go on, `on_failure`
    is told why (`serve` then stops and exits non-zero) and `/healthz` says so.
    """
    queue = open_queue(service)
    health = WorkerHealth(workers) if workers > 0 else None
    app = build_app(service, queue, workers=health)

    @contextlib.asynccontextmanager
    async def running(_: FastAPI) -> AsyncIterator[None]:
        async with queue.open_async():
            task = None
            if health is not None:
                task = asyncio.create_task(_workers(service, queue, workers, health))
                task.add_done_callback(lambda done: _report(done, on_failure))
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, WorkersFailed):
                        await task

    app.router.lifespan_context = running
    return app


async def _workers(service: DealService, queue: procrastinate.App, concurrency: int,
                   health: WorkerHealth) -> None:
    """Run the workers of this process, supervised (cancel to stop them gracefully)."""
    options = worker_options(service, concurrency)
    await supervise(queue, lambda: run_workers(queue, options), health)


def _report(task: asyncio.Task[None], on_failure: Callable[[str], None] | None) -> None:
    """Tell `on_failure` why the workers gave up (nothing when they were stopped)."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        _log.error("dealflow serve: error: %s", error)
        if on_failure is not None:
            on_failure(str(error))


def serve(service: DealService, host: str, port: int, workers: int,
          sock: socket.socket | None = None) -> None:
    """Serve the API (and workers) until stopped; exit non-zero if the workers give up.

    `sock`: bound already (`listen.bind`); else bound here, `CannotListen` if in use.
    """
    sock = sock or listen.bind(host, port)
    failures: list[str] = []
    servers: list[uvicorn.Server] = []

    def failed(reason: str) -> None:
        failures.append(reason)
        for server in servers:
            server.should_exit = True  # uvicorn's own way to stop: lifespan shutdown runs

    app = service_app(service, workers, on_failure=failed)
    servers.append(uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                 log_level="warning", access_log=False)))
    servers[0].run(sockets=[sock])
    if failures:
        raise SystemExit(WORKERS_FAILED_EXIT)


def work(service: DealService, concurrency: int) -> None:
    """Run workers until SIGINT/SIGTERM (the jobs at hand finish), through any outage.

    Exits non-zero (`WORKERS_FAILED_EXIT`) when the workers cannot go on.
    """
    queue = open_queue(service)
    health = WorkerHealth(concurrency)

    async def main() -> None:
        async with queue.open_async():
            task = asyncio.create_task(_workers(service, queue, concurrency, health))
            _stop_on_signals(task)
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        asyncio.run(main())
    except WorkersFailed as exc:
        print(f"dealflow worker: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(WORKERS_FAILED_EXIT) from None


def _stop_on_signals(task: asyncio.Task[None]) -> None:
    """The first SIGINT or SIGTERM stops the workers gracefully; a second one as usual."""
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
