"""One commit per super-step: a step's unit of work is saved with its checkpoint.

The assertions read what Postgres recorded: `xmin`, the transaction that wrote
a row. A span, an audit entry or a registry update written inside a durable
step shares its transaction with a checkpoint (or with a fenced transaction
of the same thread that the task opened: a claim, a fact write), never one
of its own.
"""

from __future__ import annotations

import time

import psycopg
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver

from dealflow.api import DealService
from graph.builder import build_graph
from state.audit import Origin
from state.database import open_pool
from state.saver import DealSaver
from tests.helpers import make_deal


def _xmins(service: DealService, sql: str, *params: object) -> list[str]:
    with service.pool.connection() as conn:
        return [str(row["x"]) for row in conn.execute(sql, params).fetchall()]


def test_spans_audit_and_receipts_of_a_durable_run_share_their_steps_transactions(
        service: DealService) -> None:
    assert isinstance(service.graph.checkpointer, DealSaver)
    report = service.start(make_deal("ROWS-1"))
    service.event(report.thread_id, "signature.completed")
    assert service.status("ROWS-1").status == "completed"
    thread = report.thread_id
    # the transactions of the thread's checkpoints and of the fenced writes its tasks made
    steps = set(_xmins(
        service, "SELECT xmin::text AS x FROM checkpoints WHERE thread_id = %s"
                 " UNION SELECT xmin::text FROM checkpoint_writes WHERE thread_id = %s"
                 " UNION SELECT xmin::text FROM dealflow_waits WHERE thread_id = %s"
                 " UNION SELECT xmin::text FROM dealflow_context_changes WHERE deal_id = %s"
                 " UNION SELECT xmin::text FROM dealflow_effects WHERE deal_id = %s",
        thread, thread, thread, "ROWS-1", "ROWS-1"))
    spans = _xmins(service, "SELECT xmin::text AS x FROM dealflow_spans WHERE thread_id = %s",
                   thread)
    assert len(spans) >= 8 and set(spans) <= steps  # no span paid a commit of its own
    audit = _xmins(service, "SELECT xmin::text AS x FROM dealflow_audit WHERE deal_id = %s"
                            " AND action IN ('route', 'route.end', 'effect.performed')",
                   "ROWS-1")
    assert len(audit) >= 8 and set(audit) <= steps
    # and the trail still reads in the order things happened
    actions = [e.action for e in service.data.audit.entries("ROWS-1", agent="lead")]
    assert actions.index("effect.performed") < actions.index("context.write")


def test_rows_written_outside_a_run_are_written_at_once(service: DealService) -> None:
    report = service.start(make_deal("ROWS-2"))
    before = len(service.data.audit.entries("ROWS-2"))
    service.data.audit.append(Origin("ROWS-2", agent="ops", thread_id=report.thread_id),
                              "note", reason="outside any run")
    entries = service.data.audit.entries("ROWS-2")
    assert len(entries) == before + 1 and entries[-1].action == "note"


def test_a_recently_returned_connection_skips_the_check_an_idle_one_does_not(
        database_url: str) -> None:
    pool = open_pool(database_url, max_size=1)
    try:
        assert pool.idle_seconds >= 0.5  # the default: a second
        pool.idle_seconds = 30.0  # "moments ago", however slow this machine is right now
        with pool.connection() as conn:
            conn.execute("SELECT 1")
        checks = pool.checks
        with pool.connection() as conn:  # handed back moments ago: no round trip
            conn.execute("SELECT 1")
        assert (pool.checks, pool.skipped_checks >= 1) == (checks, True)
        pool.idle_seconds = 0.2
        time.sleep(0.5)
        with pool.connection() as conn:  # idle a while: checked
            pid = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
        assert pool.checks == checks + 1 and pid is not None
        # its backend ended (and told the client so): the next checkout, however
        # recent, sees the server spoke, checks, and hands out a fresh connection
        pool.idle_seconds = 30.0
        with psycopg.connect(database_url, autocommit=True) as killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (pid["pid"],))
            while killer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                 (pid["pid"],)).fetchone():
                time.sleep(0.05)
        with pool.connection() as conn:
            again = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
        assert again is not None and again["pid"] != pid["pid"]
    finally:
        pool.close()


def test_a_step_with_thousands_of_writes_is_saved_whole(service: DealService) -> None:
    """Every list is one array parameter: no count of rows changes the statement."""
    saver = service.graph.checkpointer
    assert isinstance(saver, DealSaver)
    sync = {"thread_id": "rows-big", "checkpoint_ns": ""}
    first = empty_checkpoint()
    saved = saver.put({"configurable": sync}, first, {"source": "loop", "step": 0}, {})
    step = {**sync, "checkpoint_id": saved["configurable"]["checkpoint_id"]}
    writes = [("values", i) for i in range(8000)]  # 8,000 rows × 9 parameters
    saver.put_writes({"configurable": step}, writes, task_id="fan-out")
    saver.put({"configurable": step}, create_checkpoint(first, None, 1),
              {"source": "loop", "step": 1}, {})
    found = saver.get_tuple({"configurable": {"thread_id": "rows-big", "checkpoint_ns": "",
                                              "checkpoint_id": step["checkpoint_id"]}})
    assert found is not None and found.pending_writes is not None
    assert sorted(value for _, _, value in found.pending_writes) == list(range(8000))


def test_a_checkpoint_the_run_goes_on_from_rides_with_the_next_steps_first_write(
        service: DealService) -> None:
    assert isinstance(service.graph.checkpointer, DealSaver)
    report = service.start(make_deal("ROWS-4"))
    assert report.status == "waiting_signature"
    # read past the saver (which would save what it holds first): the run that returned
    # waiting has saved every checkpoint it made, each step's under its own number
    sql = ("SELECT (metadata->>'step')::int AS step, xmin::text AS x FROM checkpoints"
           " WHERE thread_id = %s ORDER BY 1")
    with psycopg.connect(service.settings.database_url or "", autocommit=True) as conn:
        saved = {row[0]: row[1] for row in conn.execute(sql, (report.thread_id,))}
    history = list(service.graph.get_state_history(
        {"configurable": {"thread_id": report.thread_id}}))
    assert sorted(saved) == sorted(s.metadata["step"] for s in history if s.metadata)
    # the input (-1), the start (0) and the supervisor's choice of qualify_lead (1) were
    # saved by qualify_lead's effect claim, in one transaction; the checkpoint after
    # qualify_lead (2) by the next effect step's first write, not on its own
    assert saved[-1] == saved[0] == saved[1] != saved[2]
    assert len(set(saved.values())) < len(saved) / 2


def test_a_run_on_another_checkpointer_writes_its_tasks_work_when_they_end(
        service: DealService) -> None:
    """The service's context, on LangGraph's InMemorySaver: nothing is held for it."""
    graph = build_graph(service.settings).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "rows-memory"}}
    graph.invoke({"deal": make_deal("ROWS-5")}, config,  # type: ignore[call-overload]
                 context=service.context)
    assert service.data.pending.threads() == []  # nothing left behind in memory
    with service.pool.connection() as conn:
        spans = conn.execute("SELECT count(*) AS n FROM dealflow_spans"
                             " WHERE thread_id = 'rows-memory'").fetchone()
    assert spans is not None and spans["n"] >= 3
