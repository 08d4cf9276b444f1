"""One writer per thread: concurrent resumes never fork a thread."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter

import pytest

from dealflow.api import DealService, thread_id_for
from state.checkpointer import make_checkpointer
from state.leases import Leases, ThreadBusy, thread_is_held
from state.transactions import DealOwnedElsewhere
from tests.conftest import cli_env, dealflow_executable
from tests.helpers import make_deal


def _resume(database_url: str, decision: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [dealflow_executable(), "resume", "RACE", "--decision", decision, "--json"],
        env=cli_env(database_url, DEALFLOW_SANDBOX_LATENCY_MS="1500", **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _single_line(service: DealService) -> None:
    saver = make_checkpointer(service.pool)
    checkpoints = list(saver.list({"configurable": {"thread_id": thread_id_for("RACE"),
                                                    "checkpoint_ns": ""}}))
    parents = Counter(c.parent_config["configurable"]["checkpoint_id"]
                      for c in checkpoints if c.parent_config)
    assert parents and max(parents.values()) == 1, "the checkpoint history forked"


@pytest.mark.parametrize(("wait", "loser_code"), [("0", 6), ("30", 4)])
def test_two_concurrent_resumes_one_decision(service: DealService, database_url: str,
                                             wait: str, loser_code: int) -> None:
    service.start(make_deal("RACE", "60000.00"))
    first = _resume(database_url, "approve", DEALFLOW_BUSY_WAIT_SECONDS=wait)
    deadline = time.monotonic() + 30
    while not thread_is_held(service.pool, thread_id_for("RACE")):  # the approver holds the thread;
        assert time.monotonic() < deadline               # its steps take 1.5 s each
        time.sleep(0.02)
    second = _resume(database_url, "reject", DEALFLOW_BUSY_WAIT_SECONDS=wait)
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert json.loads(out1)["status"] == "waiting_signature"
    assert second.returncode == loser_code, err2
    expected = "busy" if loser_code == 6 else "the deal was already approved by operator at"
    assert expected in err2 and out2 == ""
    report = service.status("RACE")
    assert [r["decision"] for r in report.context["reviews"]] == ["approve"]
    actions = [e.action for e in service.audit("RACE", agent="reviewer")]
    assert actions.count("review.decision") == 1 and actions.count("wait.answered") == 1
    _single_line(service)


def test_threads_shows_a_dead_run_and_recover_continues_it(service: DealService,
                                                           database_url: str) -> None:
    proc = subprocess.Popen(
        [dealflow_executable(), "run", "--deal-id", "DEAD-1", "--client", "Gone",
         "--value", "100"], env=cli_env(database_url, DEALFLOW_CRASH_AT="create_project:"
                                        "after_effect"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.wait(timeout=60) == -9
    [(row, active)] = service.threads("running")
    assert row.deal_id == "DEAD-1" and active is False
    listing = subprocess.run([dealflow_executable(), "threads", "--status", "running"],
                             env=cli_env(database_url), capture_output=True, text=True,
                             check=True).stdout
    assert "process gone: dealflow recover" in listing
    assert service.status("DEAD-1").note == \
        "no process drives it any more: continue it with dealflow recover"
    recovered = service.recover()
    assert [r.deal_id for r in recovered] == ["DEAD-1"]
    assert recovered[0].status in ("waiting_signature", "disqualified")
    assert service.threads("running") == []


@pytest.mark.parametrize("durability", ["sync", "async"])
def test_a_deal_id_runs_in_one_thread_only(service: DealService, durability: str) -> None:
    graph, context = service.graph, service.context
    deal = make_deal(f"ONE-{durability}")
    first = {"configurable": {"thread_id": f"first-{durability}"}}
    graph.invoke({"deal": deal}, first, context=context,  # type: ignore[arg-type]
                 durability=durability)  # type: ignore[arg-type]
    with pytest.raises(DealOwnedElsewhere, match=f"already runs in thread first-{durability}"):
        graph.invoke({"deal": deal}, {"configurable": {"thread_id": f"second-{durability}"}},
                     context=context, durability=durability)  # type: ignore[arg-type]
    row = service.data.registry.find(deal.deal_id)
    assert row is not None and row.thread_id == f"first-{durability}"
    # the second thread acted on no system: one lead record, one contract, for the deal
    records = service.records(deal.deal_id)
    assert len(records["crm"]) == 1 and len(records["contracts"]) == 1


def test_a_lease_row_locked_by_a_write_makes_the_acquire_try_again_not_wait(
        service: DealService) -> None:
    """A holder inside a fenced write (its row lock) makes a takeover try again, never block."""
    thread = "lease-locked"
    other = Leases(service.pool, seconds=0.5)
    with other.hold(thread):
        pass  # held once, released: the row exists and is expired
    with service.pool.connection() as conn, conn.transaction():
        conn.execute("SELECT 1 FROM dealflow_leases WHERE thread_id = %s FOR SHARE", (thread,))
        # a waiting acquire would block here until the test's timeout
        with pytest.raises(ThreadBusy), service.leases.hold(thread, wait_seconds=0):
            pass
    with service.leases.hold(thread) as token:  # the write committed: taken at once
        assert service.leases.token(thread) == token


def test_a_finished_run_records_its_status_and_releases_its_lease(
        service: DealService) -> None:
    report = service.start(make_deal("REL-1"))
    assert report.status == "waiting_signature"
    with service.pool.connection() as conn:
        row = conn.execute(
            "SELECT d.status, l.expires_at <= clock_timestamp() AS released FROM dealflow_deals d"
            " JOIN dealflow_leases l USING (thread_id) WHERE d.deal_id = %s",
            ("REL-1",)).fetchone()
    assert row is not None
    assert (row["status"], row["released"]) == ("waiting_signature", True)
