"""A subscriber in another process gets every change of a deal, in order, once."""

from __future__ import annotations

import json
import subprocess
import time

from dealflow.api import DealService
from tests.conftest import cli_env, dealflow_executable
from tests.helpers import make_deal


def _watchers(service: DealService) -> list[int]:
    with service.pool.connection() as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name ="
                            " 'dealflow-watch' AND datname = current_database()").fetchall()
    return [row["pid"] for row in rows]


def _wait_for(predicate, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_subscriber_survives_a_dropped_connection(service: DealService, database_url: str
                                                  ) -> None:
    service.registry.claim(make_deal("SUB-1"), "deal-SUB-1")  # known, not started yet
    watcher = subprocess.Popen(
        [dealflow_executable(), "watch", "SUB-1", "--json", "--count", "6", "--seconds", "60"],
        env=cli_env(database_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(_watchers(service)) == 1)
        service.start(make_deal("SUB-1"))  # qualified, project, contract, envelope
        [pid] = _watchers(service)
        with service.pool.connection() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        service.event("SUB-1", "signature.completed")  # signature, invoice: while it is away
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert "connection lost; reconnecting" in err
    received = [json.loads(line) for line in out.splitlines()]
    expected = service.data.facts.changes(deal_id="SUB-1")
    assert [(c["change_id"], c["key"], c["version"]) for c in received] == [
        (c.change_id, c.key, c.version) for c in expected]
    assert len(expected) == 6
    assert [c["key"].split(".")[1] for c in received][-2:] == ["signature", "invoice"]
    _wait_for(lambda: _watchers(service) == [])


def test_subscription_to_one_key_from_a_version(service: DealService, database_url: str) -> None:
    service.start(make_deal("SUB-2"))
    done = subprocess.run(
        [dealflow_executable(), "watch", "SUB-2", "--key", "SUB-2.project", "--json",
         "--seconds", "1"], env=cli_env(database_url), capture_output=True, text=True,
        timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(c["key"], c["version"], c["writer"]) for c in lines] == [
        ("SUB-2.project", 1, "project")]
