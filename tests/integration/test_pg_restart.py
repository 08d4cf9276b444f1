"""Postgres restarts under the running service: workers ride them out, `/healthz` tells the truth.

The test owns its Postgres (a cluster of its own from the installed server
binaries, `own_postgres.py`) and runs `dealflow serve --workers 2` and a
`dealflow worker` on it with deals in flight. The server is stopped twice
while steps are mid-call, first `-m fast` (clients told), then `-m immediate`
(a crash: crash recovery on start), each time held down for a few seconds and
started again. Every deal must reach its status with every effect once, no
worker process may exit, and `/healthz` must answer 503 while the database is
down and 200 again, with live workers, once it is back.

Before (the code of issue 28): the `dealflow worker` process exited with status
0 at the first restart, the workers of `serve` stopped for good while its
`/healthz` kept answering 200, and deals queued after the restart stayed
"running".
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.helpers import ONE_EACH, counts
from tests.integration.fencing import wait_until
from tests.integration.own_postgres import OwnPostgres, unavailable_reason
from tests.integration.service_faults import HealthProbe, ServiceOnOwnPostgres, tally
from tests.integration.service_procs import log_tail

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=f"no Postgres of its own: {unavailable_reason()}")
DOWN_SECONDS = 7.0  # /healthz may take PING_TIMEOUT (3 s) to say the database is down


@pytest.fixture
def running() -> Iterator[ServiceOnOwnPostgres]:
    """The service on a cluster of the test's own."""
    with OwnPostgres() as pg:
        service = ServiceOnOwnPostgres(pg)
        try:
            yield service
        finally:
            service.close()


def _in_flight(svc: ServiceOnOwnPostgres, deal_ids: list[str], done: str) -> bool:
    """Whether a deal has a step mid-call while another has not reached `done`."""
    with svc.service.pool.connection() as conn:
        claimed = conn.execute("SELECT 1 FROM dealflow_effects WHERE status = 'claimed'"
                               " LIMIT 1").fetchone()
    return claimed is not None and any(svc.status(d) != done for d in deal_ids)


def _outage(svc: ServiceOnOwnPostgres, mode: str) -> tuple[float, float]:
    """Stop the server (`mode`), keep it down a while, start it; when it was down."""
    svc.pg.stop(mode)
    down = time.monotonic()
    time.sleep(DOWN_SECONDS)
    up = time.monotonic()
    svc.pg.start()
    return down, up


def _assert_honest_while_down(probe: HealthProbe, down: float, up: float) -> None:
    during = probe.within(down, up)
    assert during, "no /healthz answer while the database was down"
    lies = [p for p in during if p.status != 503 or "database" not in p.body.get("error", "")]
    assert not lies, lies[:3]


def _assert_healthy_again(svc: ServiceOnOwnPostgres, probe: HealthProbe) -> None:
    def all_back() -> bool:  # 2 processes with 2 workers each (deals' and notifications')
        last = probe.answers[-1] if probe.answers else None
        return (last is not None and last.status == 200 and last.body["ready"]
                and last.body["workers"]["live"] >= 4
                and last.body["workers_here"]["state"] == "running")

    wait_until(all_back, 120, f"/healthz 200 with every worker back: {probe.answers[-1:]}")
    assert svc.serve.poll() is None, log_tail(svc.serve)
    assert svc.worker.poll() is None, log_tail(svc.worker)


def test_the_workers_ride_out_a_fast_and_an_immediate_restart(
        running: ServiceOnOwnPostgres) -> None:
    svc = running
    deals = [f"PR-{n}" for n in range(1, 7)]
    probe = HealthProbe(svc.api.base).start()
    try:
        for deal_id in deals:
            svc.post_deal(deal_id)
        wait_until(lambda: _in_flight(svc, deals, "waiting_signature"), 120, "a step mid-call")
        down, up = _outage(svc, "fast")
        _assert_honest_while_down(probe, down, up)
        wait_until(lambda: all(svc.status(d) == "waiting_signature" for d in deals), 180,
                   "every deal at its signature wait after the fast restart")
        _assert_healthy_again(svc, probe)

        for deal_id in deals:
            svc.sign(deal_id)
        wait_until(lambda: _in_flight(svc, deals, "completed"), 120, "an invoice mid-call")
        down, up = _outage(svc, "immediate")
        _assert_honest_while_down(probe, down, up)
        wait_until(lambda: all(svc.status(d) == "completed" for d in deals), 180,
                   "every deal completed after the immediate restart")
        _assert_healthy_again(svc, probe)
    finally:
        probe.stop()
    outcome = tally(svc.service, dict.fromkeys(deals, "completed"))
    assert outcome["lost"] == [] and outcome["doubled"] == [], outcome
    assert all(counts(svc.service.records(d)) == ONE_EACH for d in deals)
    for proc in (svc.serve, svc.worker):
        assert "worker restart" in log_tail(proc, 200_000), log_tail(proc)
    with svc.service.pool.connection() as conn:
        jobs = conn.execute("SELECT task_name, status, count(*) AS n FROM procrastinate_jobs"
                            " GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    print(f"two restarts under load: {outcome}; /healthz answers: {len(probe.answers)}; "
          f"jobs: {[(j['task_name'], j['status'], j['n']) for j in jobs]}")
