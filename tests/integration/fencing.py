"""What the fencing tests check after every fault: no effect twice, no fork, no deal lost."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import psycopg

from state.checkpointer import make_checkpointer
from state.database import Pool
from state.leases import thread_is_held


def performed_twice(pool: Pool, deal_id: str) -> dict[str, int]:
    """Effect keys audited as performed (or reconciled) more than once."""
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT detail->>'key' AS key FROM dealflow_audit WHERE deal_id = %s"
            " AND action IN ('effect.performed', 'effect.reconciled')", (deal_id,)).fetchall()
    seen = Counter(row["key"] for row in rows)
    return {key: n for key, n in seen.items() if n > 1}


def sandbox_rows(pool: Pool, deal_id: str) -> dict[str, int]:
    """How many records each sandbox system holds for the deal."""
    tables = {"projects": "sandbox_pm_projects", "contracts": "sandbox_contracts",
              "envelopes": "sandbox_esign_envelopes"}
    with pool.connection() as conn:
        return {name: conn.execute(f"SELECT count(*) AS n FROM {table} WHERE deal_id = %s",
                                   (deal_id,)).fetchone()["n"]  # type: ignore[index]
                for name, table in tables.items()}


def checkpoint_forks(pool: Pool, thread_id: str) -> int:
    """Checkpoints of the thread that have more than one child."""
    saver = make_checkpointer(pool)
    checkpoints = list(saver.list({"configurable": {"thread_id": thread_id,
                                                    "checkpoint_ns": ""}}))
    parents = Counter(c.parent_config["configurable"]["checkpoint_id"]
                      for c in checkpoints if c.parent_config)
    assert parents, "the thread has no history"
    return sum(1 for n in parents.values() if n > 1)


def wait_until(predicate: Any, seconds: float = 60, what: str = "condition") -> None:
    """Poll `predicate` until it is true (generous: the machine may be loaded)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_for_lease(pool: Pool, thread_id: str) -> None:
    """Until some live process holds the thread's lease."""
    wait_until(lambda: thread_is_held(pool, thread_id), what=f"a lease on {thread_id}")


def terminate_backends_of(url: str, pid: int, limit: int = 100) -> int:
    """`pg_terminate_backend` up to `limit` connections of the process `pid`; return how many."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s ORDER BY random() LIMIT %s",
            (f"dealflow-{pid}", limit)).fetchall()
    return len(rows)
