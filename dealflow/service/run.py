"""`dealflow serve` and `dealflow worker`: the API on uvicorn, workers on procrastinate.

Any number of both, on any number of machines, share one Postgres. `serve`
runs `--workers N` workers in its own process (0: an API-only node); `worker`
runs workers only. Each process holds one `DealService`, handed to the jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import procrastinate
import uvicorn
from fastapi import FastAPI

from dealflow.api import DealService
from dealflow.service.http import build_app
from dealflow.service.jobs import apply_queue_schema, build_queue, run_workers


def worker_options(service: DealService, concurrency: int, *,
                   signals: bool) -> dict[str, Any]:
    """Worker settings: the service for the jobs, heartbeats well inside the stall limit."""
    stalled = service.settings.worker_stalled_seconds
    return {"concurrency": concurrency, "additional_context": {"service": service},
            "install_signal_handlers": signals, "update_heartbeat_interval": stalled / 4,
            "stalled_worker_timeout": stalled, "fetch_job_polling_interval": 1.0,
            "name": f"dealflow-{service.leases.owner}"}


def open_queue(service: DealService) -> procrastinate.App:
    """The queue on the service's database, its tables created if missing."""
    assert service.settings.database_url
    queue = build_queue(service.settings.database_url)
    apply_queue_schema(service, queue)
    return queue


def service_app(service: DealService, workers: int) -> FastAPI:
    """The API, running `workers` in-process workers for as long as it serves."""
    queue = open_queue(service)
    app = build_app(service, queue)

    @contextlib.asynccontextmanager
    async def running(_: FastAPI) -> AsyncIterator[None]:
        async with queue.open_async():
            task = None
            if workers > 0:
                task = asyncio.create_task(run_workers(
                    queue, worker_options(service, workers, signals=False)))
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app.router.lifespan_context = running
    return app


def serve(service: DealService, host: str, port: int, workers: int) -> None:
    """Serve the API (and workers) until stopped."""
    uvicorn.run(service_app(service, workers), host=host, port=port, log_level="warning",
                access_log=False)


def work(service: DealService, concurrency: int) -> None:
    """Run workers until stopped (SIGINT/SIGTERM finish the jobs at hand)."""
    queue = open_queue(service)

    async def main() -> None:
        async with queue.open_async():
            await run_workers(queue, worker_options(service, concurrency, signals=True))

    asyncio.run(main())
