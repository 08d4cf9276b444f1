"""Hostile input, hostile checkpoints and a dropped database connection."""

from __future__ import annotations

import json
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import ormsgpack
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from psycopg.types.json import Jsonb

from dealflow.api import DealService, parse_deal, thread_id_for
from dealflow.errors import InvalidInput, NotFound
from state.config import Settings
from state.database import open_pool
from state.fact_store import FactKeyError
from tests.conftest import cli_env, run_cli
from tests.helpers import ONE_EACH, counts, make_deal
from tests.unit.test_properties import deal_inputs

HOSTILE = ["x'); DROP TABLE dealflow_deals;--", "')--", "$.deal[*].value", "{\"$ne\": null}",
           "%", "_", "\\", "a" * 100_000, "deal-\u0000", "D-1' OR '1'='1"]


def test_lookups_with_hostile_strings_find_nothing_and_break_nothing(service: DealService
                                                                     ) -> None:
    service.start(make_deal("SAFE-1"))
    for ref in HOSTILE:
        for lookup in (service.status, service.history, service.records, service.audit):
            with pytest.raises((NotFound, InvalidInput)):
                lookup(ref)
        assert service.audit("SAFE-1", agent=ref) == []
        assert service.audit("SAFE-1", key=ref) == []
        try:
            assert service.data.facts.changes(deal_id=ref) == []
        except FactKeyError:
            assert "\x00" in ref
    assert [row.deal_id for row, _ in service.threads()] == ["SAFE-1"]
    assert service.status("SAFE-1").status == "waiting_signature"


def test_cli_filters_with_hostile_strings(database_url: str) -> None:
    env = cli_env(database_url)
    assert run_cli(["run", "--deal-id", "SAFE-2", "--client", "O'Reilly \"Media\"; --",
                    "--value", "100"], env).returncode == 0
    for ref in HOSTILE[:5]:
        done = run_cli(["status", ref], env)
        assert done.returncode == 3 and "no deal or thread" in done.stderr
        audit = run_cli(["audit", "SAFE-2", "--agent", ref, "--key", ref], env)
        assert audit.returncode == 0 and "no audit entries" in audit.stdout
    assert run_cli(["threads", "--status", "')--"], env).returncode == 2
    listing = run_cli(["threads"], env)
    assert "O'Reilly \"Media\"; --" in listing.stdout


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_hostile_checkpoint_blobs_are_refused_and_run_no_code(service: DealService,
                                                              tmp_path: Path) -> None:
    service.start(make_deal("EVIL-1"))
    service.start(make_deal("GOOD-1"))
    marker = tmp_path / "pwned"
    system_call = ormsgpack.packb(
        ormsgpack.Ext(0, ormsgpack.packb(("os", "system", f"touch {marker}"))))
    with service.pool.connection() as conn:
        thread = thread_id_for("EVIL-1")
        conn.execute("UPDATE checkpoint_blobs SET type = 'pickle', blob = %s"
                     " WHERE thread_id = %s AND channel = 'qualification'",
                     (pickle.dumps(_Planted(marker)), thread))
        conn.execute("UPDATE checkpoint_blobs SET type = 'msgpack', blob = %s"
                     " WHERE thread_id = %s AND channel = 'project'", (system_call, thread))
        changed = conn.execute("SELECT count(*) AS n FROM checkpoint_blobs WHERE thread_id ="
                               " %s AND channel IN ('qualification', 'project')", (thread,)
                               ).fetchone()
    assert changed is not None and changed["n"] >= 2
    with pytest.raises(Exception, match="pickle"):
        service.status("EVIL-1")
    assert not marker.exists()
    assert service.status("GOOD-1").status == "waiting_signature"  # legitimate state loads


def test_connection_loss_mid_run_fails_cleanly_and_resumes(settings: Settings,
                                                           database_url: str) -> None:
    slow = settings.model_copy(update={"sandbox_latency_ms": 300})
    with DealService(slow) as service:
        killer_done = threading.Event()

        def kill_connections() -> None:
            time.sleep(0.8)
            with service.pool.connection() as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE application_name ~ '^dealflow-[0-9]+$'"
                             " AND pid <> pg_backend_pid() AND datname = current_database()")
            killer_done.set()

        threading.Thread(target=kill_connections, daemon=True).start()
        try:
            outcome = service.start(make_deal("DROP-1")).status
        except psycopg.OperationalError:  # a clean database error; the thread is resumable
            outcome = "connection lost"
        assert killer_done.wait(10)
    assert outcome in ("waiting_signature", "connection lost"), outcome
    done = run_cli(["recover", "--json"], cli_env(database_url))
    assert done.returncode == 0, done.stderr
    final = run_cli(["event", "DROP-1", "signature.completed", "--json"], cli_env(database_url))
    assert final.returncode == 0, final.stderr
    with DealService(settings) as service:
        assert service.status("DROP-1").status == "completed"
        assert counts(service.records("DROP-1")) == ONE_EACH


def test_a_pool_connection_whose_backend_was_terminated_is_replaced_on_checkout(
        database_url: str) -> None:
    # the pool's checkout check: a connection whose backend was ended is never handed out
    pool = open_pool(database_url, max_size=1)
    try:
        with pool.connection() as conn:
            first = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
        with psycopg.connect(database_url, autocommit=True) as killer:
            assert first is not None
            killer.execute("SELECT pg_terminate_backend(%s)", (first["pid"],))
            while killer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                 (first["pid"],)).fetchone():
                time.sleep(0.05)
        with pool.connection() as conn:  # a fresh connection, not an error
            second = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
        assert second is not None and second["pid"] != first["pid"]
    finally:
        pool.close()


def test_deal_input_stored_as_json_is_not_interpreted(service: DealService) -> None:
    weird = make_deal("JSON-1", lead={"notes": "{\"$where\": \"1==1\"} ${jndi:x} {{7*7}}"})
    service.start(weird)
    with service.pool.connection() as conn:
        row = conn.execute("SELECT input FROM dealflow_deals WHERE deal_id = 'JSON-1'"
                           ).fetchone()
    assert row is not None and row["input"]["lead"]["notes"] == weird.lead.notes
    assert Jsonb  # the registry stores input through psycopg's Jsonb adapter


@hypothesis_settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=deal_inputs())
def test_random_deals_work_or_write_nothing(service: DealService, data: dict[str, Any]) -> None:
    data = {**data, "deal_id": f"P-{abs(hash(json.dumps(data, default=str))) % 10**9}"} \
        if data.get("deal_id") == "D-1" else data
    before = len(service.threads())
    try:
        deal = parse_deal(data)
    except InvalidInput:
        assert len(service.threads()) == before
        return
    report = service.start(deal)
    assert report.status in ("waiting_signature", "waiting_review", "disqualified")
    assert len(service.threads()) == before + 1
