"""`/healthz` tells whether deals can move; workers that cannot go on exit non-zero.

Ready needs Postgres and, when work is expected, a worker whose heartbeat is
recent (procrastinate's `procrastinate_workers`); live is the process itself.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import httpx

from dealflow.api import DealService
from tests.integration.fencing import wait_until
from tests.integration.service_procs import (
    Api,
    answers,
    free_port,
    log_tail,
    start_process,
    stop_process,
)

DEAL = {"deal_id": "HZ-1", "client": "Acme GmbH", "value": "9000",
        "lead": {"company_size": 300, "engagement": 80, "budget": "20000"}}
STALLED = {"DEALFLOW_WORKER_STALLED_SECONDS": "4"}


def _health(api: Api, path: str = "/healthz") -> httpx.Response:
    return httpx.get(api.base + path, timeout=60)


def test_healthz_is_503_while_no_worker_takes_the_jobs(
        api_factory: Any, service: DealService, database_url: str) -> None:
    api: Api = api_factory(workers=0, **STALLED)  # an API-only node, nothing queued yet
    assert _health(api).json()["workers"] == {"live": 0, "registered": 0, "jobs_due": 0,
                                              "stalled_after_seconds": 4}
    assert api.post("/v1/deals", DEAL).status_code == 202
    waiting = _health(api)
    assert waiting.status_code == 503, waiting.text
    assert waiting.json()["error"] == ("no worker has sent a heartbeat in the last 4 s "
                                       "(0 registered, 1 jobs due)")
    assert _health(api, "/healthz/ready").json() == {"error": waiting.json()["error"]}
    assert _health(api, "/healthz/live").json() == {"live": True}
    worker = start_process(database_url, "worker", "--concurrency", "1", **STALLED)
    try:
        wait_until(lambda: _health(api).status_code == 200, 120, "a worker's heartbeat")
        assert _health(api, "/healthz/ready").json() == {"ready": True}
        wait_until(lambda: api.status("HZ-1") == "waiting_signature", 120, "the deal")
        os.kill(worker.pid, signal.SIGKILL)  # its rows stay, its heartbeat stops
        wait_until(lambda: _health(api).status_code == 503, 60, "the silence noticed")
        assert "no worker has sent a heartbeat" in _health(api).json()["error"]
    finally:
        stop_process(worker)


def test_workers_that_cannot_go_on_exit_non_zero(service: DealService,
                                                 database_url: str) -> None:
    """Not an outage (procrastinate's table is gone): both kinds of process exit 70."""
    port = free_port()
    serve = start_process(database_url, "serve", "--port", str(port), "--workers", "1")
    worker = start_process(database_url, "worker", "--concurrency", "1")
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}") and _workers(service) >= 4,
                   120, "both processes' workers")
        with service.pool.connection() as conn:
            conn.execute("ALTER TABLE procrastinate_jobs RENAME TO procrastinate_jobs_gone")
        assert worker.wait(timeout=120) == 70, log_tail(worker)
        assert serve.wait(timeout=120) == 70, log_tail(serve)
        assert "dealflow worker: error: the workers stopped: Undefined" in log_tail(worker)
        assert "dealflow serve: error: the workers stopped: Undefined" in log_tail(serve)
    finally:
        stop_process(serve)
        stop_process(worker)


def _workers(service: DealService) -> int:
    with service.pool.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM procrastinate_workers").fetchone()
    return int(row["n"]) if row else 0
