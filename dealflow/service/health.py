"""Health answers: liveness, readiness, and the whole truth in `/healthz`.

Live (`/healthz/live`): the process answers and its workers, if it runs any,
have not given up. Ready (`/healthz/ready`): Postgres answers, this process's
workers (if any) are running, and, when workers are expected (this process
runs some, some are registered, or jobs are due), at least one worker sent a
heartbeat within the stall limit (procrastinate's `procrastinate_workers`).
`/healthz` answers as readiness, with the details. Not ready is a 503 whose
`error` is one line saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from dealflow.api import DealService
from dealflow.service.worker_loop import WorkerHealth, one_line

PING_TIMEOUT = 3.0  # seconds to get a pool connection: a loaded machine is not an outage
_WORKERS = """
SELECT count(*) FILTER (WHERE last_heartbeat > now() - make_interval(secs => %(stalled)s))
         AS live,
       count(*) AS registered,
       (SELECT count(*) FROM (SELECT 1 FROM procrastinate_jobs WHERE status = 'todo'
          AND (scheduled_at IS NULL OR scheduled_at <= now()) LIMIT 1000) AS due) AS due
  FROM procrastinate_workers
"""


@dataclass
class Health:
    """What `/healthz` reports."""

    database: str = "ok"
    workers: dict[str, Any] = field(default_factory=dict)
    here: dict[str, Any] | None = None
    reason: str | None = None

    @property
    def ready(self) -> bool:
        """Whether this node is ready: nothing stands in the way of a deal moving."""
        return self.reason is None

    def body(self) -> dict[str, Any]:
        """The JSON of `/healthz` (with `error` when not ready)."""
        live = self.here is None or self.here["state"] != "failed"
        body: dict[str, Any] = {"ok": self.ready, "live": live, "ready": self.ready,
                                "database": self.database, "workers": self.workers,
                                "workers_here": self.here}
        if self.reason is not None:
            body["error"] = self.reason
        return body


def check_health(service: DealService, here: WorkerHealth | None) -> Health:
    """Ask Postgres about itself and the workers' heartbeats (blocking)."""
    health = Health(here=here.summary() if here is not None else None)
    stalled = service.settings.worker_stalled_seconds
    try:
        with service.pool.connection(timeout=PING_TIMEOUT) as conn:
            row = conn.execute(_WORKERS, {"stalled": stalled}).fetchone()
    except Exception as exc:  # any failure here is the answer
        health.database = f"unreachable: {one_line(exc)}"
        health.reason = f"the database is unreachable ({one_line(exc)})"
        return health
    assert row is not None
    health.workers = {"live": row["live"], "registered": row["registered"],
                      "jobs_due": row["due"], "stalled_after_seconds": stalled}
    if here is not None and here.state != "running":
        health.reason = (f"this process's workers are {here.state} "
                         f"({here.reason or 'no reason given'})")
    elif row["live"] == 0 and (here is not None or row["registered"] or row["due"]):
        health.reason = (f"no worker has sent a heartbeat in the last {stalled:g} s "
                         f"({row['registered']} registered, {row['due']} jobs due)")
    return health


def health_routes(app: FastAPI, service: DealService, here: WorkerHealth | None) -> None:
    """Add `/healthz`, `/healthz/ready` and `/healthz/live` to `app`."""

    async def checked() -> Health:
        result: Health = await anyio.to_thread.run_sync(check_health, service, here)
        return result

    @app.get("/healthz", tags=["service"], responses={503: {}})
    async def healthz() -> JSONResponse:
        """200 when ready (see /healthz/ready), else 503 naming why; the details either way."""
        health = await checked()
        return JSONResponse(health.body(), status_code=200 if health.ready else 503)

    @app.get("/healthz/ready", tags=["service"], responses={503: {}})
    async def ready() -> JSONResponse:
        """Readiness: Postgres answers and workers take jobs (heartbeats); else 503."""
        health = await checked()
        if health.reason is not None:
            return JSONResponse({"error": health.reason}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/healthz/live", tags=["service"], responses={503: {}})
    async def live() -> JSONResponse:
        """Liveness: 200 while this process can go on (a database outage included)."""
        if here is not None and here.state == "failed":
            return JSONResponse({"error": f"the workers gave up: {here.reason}"},
                                status_code=503)
        return JSONResponse({"live": True})
