"""A service under faults: `dealflow serve` and a worker on a Postgres the caller owns.

`ServiceOnOwnPostgres` starts both against a database on an `OwnPostgres`
cluster (which the caller may stop, crash and restart); `HealthProbe` asks
`/healthz` all along and keeps every answer with its start and end times, so
a test can tell what the service said while the database was down; `tally`
reads back what became of every deal: its status, and anything done twice.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from dealflow.api import DealService, thread_id_for
from dealflow.errors import DealflowError
from dealflow.service.auth import create_token
from state.config import Settings
from tests.helpers import counts
from tests.integration.fencing import checkpoint_forks, performed_twice, wait_until
from tests.integration.own_postgres import OwnPostgres
from tests.integration.service_procs import (
    Api,
    answers,
    free_port,
    log_tail,
    start_process,
    stop_process,
    webhook,
)

# Steps ride out a few seconds of outage (8 attempts, 0.5 s doubling to 10 s); a
# stalled worker's jobs go back to the queue 6 s after its last heartbeat.
FAULT_ENV = {"DEALFLOW_SANDBOX_LATENCY_MS": "300", "DEALFLOW_MAX_ATTEMPTS": "8",
             "DEALFLOW_RETRY_INITIAL_INTERVAL": "0.5", "DEALFLOW_RETRY_JITTER": "true",
             "DEALFLOW_WORKER_STALLED_SECONDS": "6"}


@dataclass
class Probe:
    """One `/healthz` request: when it started and ended, its status and body."""

    started: float
    ended: float
    status: int
    body: dict[str, Any]


@dataclass
class HealthProbe:
    """Asks `base`/healthz every `every` seconds in a thread until `stop()`."""

    base: str
    every: float = 0.25
    answers: list[Probe] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> HealthProbe:
        """Start asking."""
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop asking."""
        self._stop.set()

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    answer = client.get("/healthz")
                    status, body = answer.status_code, answer.json()
                except (httpx.HTTPError, ValueError) as exc:
                    status, body = 0, {"error": repr(exc)}
                self.answers.append(Probe(started, time.monotonic(), status, body))
                self._stop.wait(self.every)

    def within(self, start: float, end: float) -> list[Probe]:
        """The answers to requests made and answered between `start` and `end`."""
        return [p for p in list(self.answers) if p.started >= start and p.ended <= end]


class ServiceOnOwnPostgres:
    """`dealflow serve --workers 2` and `dealflow worker --concurrency 2` on `pg`."""

    def __init__(self, pg: OwnPostgres, dbname: str = "faults", **env: str) -> None:
        """Create the database and its schema, a token, and start both processes."""
        self.pg, self.env = pg, {**FAULT_ENV, **env}
        self.url = pg.create_database(dbname)
        self.service = DealService(Settings(database_url=self.url))
        token = create_token(self.service.pool, "ops", "operator")
        port = free_port()
        self.serve = start_process(self.url, "serve", "--port", str(port), "--workers", "2",
                                   **self.env)
        self.worker = self.start_worker()
        self.api = Api(f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"},
                       {}, self.serve)
        wait_until(lambda: answers(self.api.base) or self.serve.poll() is not None, 120,
                   "the API")
        assert self.serve.poll() is None, log_tail(self.serve)

    def start_worker(self) -> subprocess.Popen[str]:
        """Another `dealflow worker --concurrency 2` process."""
        return start_process(self.url, "worker", "--concurrency", "2", **self.env)

    def post_deal(self, deal_id: str) -> None:
        """Queue a small deal (it goes to the signature wait), retrying a 503."""
        body = {"deal_id": deal_id, "client": "Acme GmbH", "value": "9000",
                "lead": {"company_size": 300, "engagement": 80, "budget": "20000"}}
        self._until_taken(lambda: self.api.post("/v1/deals", body), f"POST {deal_id}")

    def sign(self, deal_id: str) -> None:
        """Deliver the deal's `signature.completed` webhook, retrying a 503."""
        envelope = self.service.status(deal_id).pending["envelope_id"]  # type: ignore[index]
        event = {"event_id": f"evt-{deal_id}", "envelope_id": envelope,
                 "event": "signature.completed"}
        self._until_taken(lambda: webhook(self.api, event), f"the webhook of {deal_id}")

    @staticmethod
    def _until_taken(send: Any, what: str) -> None:
        deadline = time.monotonic() + 120
        while True:
            try:
                answer = send()
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code in (200, 202):
                return
            assert time.monotonic() < deadline, f"{what}: {answer and answer.text}"
            time.sleep(0.5)

    def status(self, deal_id: str) -> str:
        """The deal's status read from Postgres ("unavailable" while it is down)."""
        try:
            return self.service.status(deal_id).status
        except Exception as exc:  # the database may be down right now
            return f"unavailable: {type(exc).__name__}"

    def close(self) -> None:
        """Stop both processes (SIGTERM) and close the service."""
        for proc in (self.serve, self.worker):
            stop_process(proc)
        self.service.close()


def tally(service: DealService, expected: dict[str, str]) -> dict[str, Any]:
    """What became of each deal: statuses, lost (not at the expected status), doubled."""
    statuses = Counter[str]()
    lost, doubled = [], []
    for deal_id, want in expected.items():
        try:
            status = service.status(deal_id).status
        except DealflowError as exc:  # e.g. a deal whose first step never ran
            status = f"{type(exc).__name__}: {exc}"[:80]
            statuses[status] += 1
            lost.append(f"{deal_id}: {status}")
            continue
        statuses[status] += 1
        if status != want:
            lost.append(f"{deal_id}: {status}")
        held = counts(service.records(deal_id))
        if (performed_twice(service.pool, deal_id) or any(n > 1 for n in held.values())
                or checkpoint_forks(service.pool, thread_id_for(deal_id))):
            doubled.append(f"{deal_id}: {held}")
    return {"deals": len(expected), "statuses": dict(statuses), "lost": lost,
            "doubled": doubled}
