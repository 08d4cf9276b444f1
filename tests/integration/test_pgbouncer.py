"""dealflow through PgBouncer in transaction pooling mode: the CLI, the service, the workers.

`DATABASE_URL` points at a PgBouncer of the test's own (`tests.integration.pgbouncer`:
four server sessions, shared by every client), `DEALFLOW_DIRECT_DATABASE_URL` at the
server itself: what needs a session of its own (LISTEN, the migration lock) goes
there, everything else through the pooler, unprepared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dealflow.api import DealService
from state.database import connection_kwargs
from tests.conftest import cli_env, run_cli
from tests.integration.fencing import sandbox_rows, wait_until
from tests.integration.pgbouncer import (
    MISSING,
    direct_sockets,
    installed,
    running_pgbouncer,
    version,
)
from tests.integration.service_procs import (
    api_factory_for,
    log_tail,
    start_process,
    stop_process,
    webhook,
)
from tests.integration.warm_cli import WarmProcess

pytestmark = pytest.mark.skipif(not installed(), reason=MISSING)

DEAL = {"client": "Acme GmbH", "value": "9000",
        "lead": {"company_size": 300, "engagement": 80, "budget": "20000"}}
ONE_EACH = {"projects": 1, "contracts": 1, "envelopes": 1}
LISTENERS = ["listener", "listener"]  # a process's two workers: the deals' and the posts'


@pytest.fixture
def bouncer(database_url: str) -> Iterator[str]:
    """The test database's URL through PgBouncer (transaction mode)."""
    with running_pgbouncer(database_url) as url:
        yield url


@pytest.fixture
def pooled_api(service: DealService, bouncer: str) -> Iterator[Any]:
    """`dealflow serve` on the PgBouncer URL (`tests.integration.service_procs`)."""
    yield from api_factory_for(service, bouncer)


def test_what_a_transaction_pooler_breaks_and_what_dealflow_does_instead(
        bouncer: str) -> None:
    # two clients on PgBouncer: `other` takes the server session `one` just released
    # (PgBouncer hands out the last one released), so `one`'s next statement lands on
    # another session
    with psycopg.connect(bouncer, autocommit=True, prepare_threshold=0) as one, \
            psycopg.connect(bouncer, autocommit=True) as other:
        one.execute("SELECT 1")  # prepared in the session it ran in
        with other.transaction():
            other.execute("SELECT 2")
            if version() < (1, 21):  # no protocol-level prepared statements before 1.21
                with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                    one.execute("SELECT 1")
        one.execute("SELECT pg_advisory_lock(42)")  # a session lock, in a session lent out
        with other.transaction():
            other.execute("SELECT 2")
            unlocked = one.execute("SELECT pg_advisory_unlock(42)").fetchone()
        assert unlocked == (False,)  # ... and never given back: a migration lock would hang
    # dealflow's pooled connections prepare nothing: the same sequence just works
    pooled = connection_kwargs(pooled=True)
    with psycopg.connect(bouncer, **pooled) as one, psycopg.connect(bouncer, **pooled) as other:
        one.execute("SELECT 1")
        with other.transaction():
            other.execute("SELECT 2")
            assert one.execute("SELECT 1 AS n").fetchone() == {"n": 1}


def test_the_cli_runs_deals_through_pgbouncer(bouncer: str, database_url: str,
                                              service: DealService) -> None:
    env = cli_env(bouncer, DEALFLOW_DIRECT_DATABASE_URL=database_url)

    def run(*args: str) -> dict[str, Any]:
        done = run_cli([*args, "--json"], env)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    ids = [f"PB-{n}" for n in range(3)]
    running = [WarmProcess(["run", "--deal-id", deal_id, "--client", "Acme", "--value", "9000",
                            "--json"], env) for deal_id in ids]  # at once, on 4 sessions
    for done in (proc.result(120) for proc in running):
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "waiting_signature"
    for deal_id in ids:
        assert run("event", deal_id, "signature.completed")["status"] == "completed"
        assert run("status", deal_id)["status"] == "completed"
        assert sandbox_rows(service.pool, deal_id) == ONE_EACH
    watched = run_cli(["watch", "PB-0", "--count", "1", "--json"], env)  # LISTEN: direct
    assert watched.returncode == 0, watched.stderr
    assert json.loads(watched.stdout.splitlines()[0])["deal_id"] == "PB-0"
    assert run("run", "--deal-id", "PB-BIG", "--client", "Globex",
               "--value", "68000")["status"] == "waiting_review"
    assert run("resume", "PB-BIG", "--decision", "approve")["status"] == "waiting_signature"
    # without the direct URL, the pooler is taken for a server: where PgBouncer refuses
    # the `options` a server connection carries (1.18 does), it fails at once, saying why
    if not _accepts_options(bouncer):
        alone = run_cli(["status", "PB-0"], cli_env(bouncer))
        assert alone.returncode == 5
        assert "set DEALFLOW_DIRECT_DATABASE_URL" in alone.stderr, alone.stderr


def _accepts_options(url: str) -> bool:
    try:
        psycopg.connect(url, options="-c idle_in_transaction_session_timeout=30000").close()
    except psycopg.OperationalError as exc:
        assert "unsupported startup parameter" in str(exc)
        return False
    return True


def test_the_service_and_workers_run_deals_through_pgbouncer(
        pooled_api: Any, bouncer: str, database_url: str, service: DealService) -> None:
    direct = {"DEALFLOW_DIRECT_DATABASE_URL": database_url}
    api = pooled_api(workers=1, **direct)
    worker = start_process(bouncer, "worker", "--concurrency", "2", **direct)
    try:
        wait_until(lambda: _own_sessions(database_url, worker.pid) == LISTENERS
                   or worker.poll() is not None, 120, "the worker's listeners")
        ids = [f"PBS-{n}" for n in range(4)]
        for deal_id in ids:
            created = api.post("/v1/deals", {**DEAL, "deal_id": deal_id})
            assert created.status_code == 202, created.text
        for deal_id in ids:
            wait_until(lambda d=deal_id: api.status(d) == "waiting_signature", 120,
                       f"{deal_id}'s signature wait")
            envelope = api.get(f"/v1/deals/{deal_id}").json()["pending"]["envelope_id"]
            event = {"event_id": f"evt-{deal_id}", "envelope_id": envelope,
                     "event": "signature.completed"}
            assert webhook(api, event).status_code == 202
        for deal_id in ids:
            wait_until(lambda d=deal_id: api.status(d) == "completed", 120,
                       f"{deal_id}'s completion")
            assert sandbox_rows(service.pool, deal_id) == ONE_EACH
        # the only sessions each process opened itself are its listeners; the rest went
        # through PgBouncer
        for proc in (api.proc, worker):
            assert proc.poll() is None, log_tail(proc)
            assert _own_sessions(database_url, proc.pid) == LISTENERS, log_tail(proc)
    finally:
        stop_process(worker)


def _own_sessions(url: str, pid: int) -> list[str]:
    """What the server sessions process `pid` connected itself (not via PgBouncer) run.

    Over TCP, a session is the process's own when its client port is one of the
    process's sockets to the server. Over a Unix socket (the embedded server), both
    look alike: then the sessions that LISTEN under the process's name are taken.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT client_port, application_name, query FROM pg_stat_activity"
                            " WHERE datname = current_database()").fetchall()
        unix = str(conn.info.host).startswith("/")
        ports = set() if unix else direct_sockets(pid, int(conn.info.port))
    if unix:
        return ["listener" for _, name, query in rows
                if name == f"dealflow-{pid}" and _listens(query)]
    return sorted("listener" if _listens(query) else query
                  for port, _, query in rows if port in ports)


def _listens(query: str) -> bool:
    """A listener's last statement: its LISTEN, or the check it runs when idle a while."""
    return query.startswith("LISTEN") or query == "SELECT 1"
