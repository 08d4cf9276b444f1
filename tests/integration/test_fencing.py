"""Fencing: a process that lost a thread's lease can never act on it again.

Each test drives a real `dealflow` process on real Postgres, hurts it (its
connections terminated, the process frozen past its lease, the server
restarted), and then checks what a user would: every effect was performed once,
the checkpoint history has no fork, and the deal reaches its wait.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from dealflow.api import DealService, thread_id_for
from tests.conftest import cli_env, dealflow_executable
from tests.integration.fencing import (
    checkpoint_forks,
    performed_twice,
    sandbox_rows,
    terminate_backends_of,
    wait_for_lease,
    wait_until,
)

ONE_EACH = {"projects": 1, "contracts": 1, "envelopes": 1}


def _run(url: str, deal_id: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [dealflow_executable(), "run", "--deal-id", deal_id, "--client", "Acme",
         "--value", "9000", "--json"], env=cli_env(url, **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _claimed(service: DealService, deal_id: str) -> bool:
    with service.pool.connection() as conn:
        return conn.execute("SELECT 1 FROM dealflow_effects WHERE deal_id = %s AND"
                            " status = 'claimed' AND step <> 'qualify_lead'",
                            (deal_id,)).fetchone() is not None


def _assert_once_and_whole(service: DealService, deal_id: str) -> None:
    assert performed_twice(service.pool, deal_id) == {}
    assert sandbox_rows(service.pool, deal_id) == ONE_EACH
    assert checkpoint_forks(service.pool, thread_id_for(deal_id)) == 0
    assert service.status(deal_id).status == "waiting_signature"


def test_the_reproduction_a_second_run_cannot_drive_a_leased_thread(
        service: DealService, database_url: str) -> None:
    """Before: killing the lock's backend let a second run drive the deal too."""
    first = _run(database_url, "LK-2", DEALFLOW_SANDBOX_LATENCY_MS="3000")
    wait_for_lease(service.pool, thread_id_for("LK-2"))
    assert terminate_backends_of(database_url, first.pid) >= 1
    second = _run(database_url, "LK-2")
    out2, err2 = second.communicate(timeout=120)
    assert second.returncode == 6, err2
    assert "busy" in err2 and out2 == ""
    _, err1 = first.communicate(timeout=300)
    assert "discarding" not in err1 and "error ignored" not in err1  # no pool chatter
    assert first.returncode in (0, 5) and "Traceback" not in err1, err1
    service.recover()  # if the terminated connection failed the first run mid-step
    _assert_once_and_whole(service, "LK-2")


def test_terminating_each_connection_in_turn_loses_and_doubles_nothing(
        service: DealService, database_url: str) -> None:
    first = _run(database_url, "LK-3", DEALFLOW_SANDBOX_LATENCY_MS="400",
                 DEALFLOW_RETRY_INITIAL_INTERVAL="0.2", DEALFLOW_MAX_ATTEMPTS="6")
    wait_for_lease(service.pool, thread_id_for("LK-3"))
    killed = 0
    while first.poll() is None and killed < 8:  # one connection at a time, 8 in all
        killed += terminate_backends_of(database_url, first.pid, limit=1)
        time.sleep(0.5)
    first.communicate(timeout=300)
    assert killed >= 2
    service.recover()
    _assert_once_and_whole(service, "LK-3")


def test_a_frozen_process_whose_lease_expired_is_fenced_out(
        service: DealService, database_url: str) -> None:
    """A stalled owner (GC pause, frozen VM) wakes up after another took over."""
    frozen = _run(database_url, "LK-4", DEALFLOW_SANDBOX_LATENCY_MS="1500",
                  DEALFLOW_LEASE_SECONDS="2")
    # frozen while it waits for a system, its claim made: it wakes after the takeover
    wait_until(lambda: _claimed(service, "LK-4"), what="a claimed effect")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        time.sleep(3)  # past its 2 s lease
        # frozen inside a fenced transaction (a parallel branch's claim), it still holds
        # the lease row's lock until Postgres ends its idle transaction (30 s): wait for it
        taker = _run(database_url, "LK-4", DEALFLOW_BUSY_WAIT_SECONDS="90")
        _, err = taker.communicate(timeout=300)
        assert taker.returncode == 0, err
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    _, err = frozen.communicate(timeout=120)
    assert frozen.returncode == 6, err
    assert "lease" in err and "taken over" in err and "stopped without acting" in err
    _assert_once_and_whole(service, "LK-4")
