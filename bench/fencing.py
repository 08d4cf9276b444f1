"""The fencing reproduction as a command that prints what happened.

    python -m bench.fencing [--source DIR] [--latency-ms 3000]

On a throwaway database: start `dealflow run --deal-id LK-2` with slow systems,
wait until it drives the thread, terminate the backends that hold an advisory
lock or belong to that process (`pg_terminate_backend`), start the same `run`
again, and report the second run's exit, the effects performed twice and the
checkpoints with more than one child. `--source DIR` runs the dealflow code in
DIR (a `git worktree` of an older commit) instead of this checkout's, for a
before/after comparison with the same interpreter and packages.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from psycopg.rows import DictRow, dict_row

from bench.common import throwaway_database

RUN = ["run", "--deal-id", "LK-2", "--client", "Acme", "--value", "9000", "--json"]


def _dealflow(url: str, source: Path | None, latency_ms: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALFLOW_")}
    env.update(DATABASE_URL=url, DEALFLOW_SANDBOX_LATENCY_MS=str(latency_ms))
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return subprocess.Popen([sys.executable, "-m", "dealflow.cli", *RUN], env=env,
                            cwd=source or None, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_until_driving(conn: psycopg.Connection[DictRow], first: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not _driving(conn):
        if time.monotonic() > deadline or first.poll() is not None:
            raise SystemExit("the first run never started driving the deal")
        time.sleep(0.05)


def _driving(conn: psycopg.Connection[DictRow]) -> bool:
    try:
        return conn.execute("SELECT 1 FROM dealflow_audit WHERE deal_id = 'LK-2'"
                            " AND action = 'route'").fetchone() is not None
    except psycopg.errors.UndefinedTable:  # the first run is still migrating
        return False


def _terminate(conn: psycopg.Connection[DictRow], pid: int) -> int:
    rows = conn.execute(
        "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE a.pid <> "
        "pg_backend_pid() AND (a.application_name = %s OR a.pid IN (SELECT l.pid FROM"
        " pg_locks l WHERE l.locktype = 'advisory' AND l.granted))",
        (f"dealflow-{pid}",)).fetchall()
    return len(rows)


def reproduce(url: str, source: Path | None, latency_ms: int) -> dict[str, object]:
    """Run the reproduction on `url`; return what a user would check."""
    first = _dealflow(url, source, latency_ms)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        _wait_until_driving(conn, first)
        terminated = _terminate(conn, first.pid)
        second = _dealflow(url, source, latency_ms)
        _, second_err = second.communicate(timeout=600)
        _, first_err = first.communicate(timeout=600)
        doubled = conn.execute(
            "SELECT detail->>'effect' AS effect, count(*) AS n FROM dealflow_audit"
            " WHERE deal_id = 'LK-2' AND action = 'effect.performed'"
            " GROUP BY 1 HAVING count(*) > 1").fetchall()
        forks = conn.execute(
            "SELECT count(*) AS n FROM (SELECT parent_checkpoint_id FROM checkpoints"
            " WHERE thread_id = (SELECT thread_id FROM dealflow_deals WHERE deal_id = 'LK-2')"
            " AND parent_checkpoint_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1) f").fetchone()
    return {"backends terminated": terminated,
            "first run": f"exit {first.returncode} {first_err.strip()[-160:]}",
            "second run": f"exit {second.returncode} {second_err.strip()[:160]}",
            "effects performed twice": {r["effect"]: r["n"] for r in doubled} or 0,
            "checkpoints with two children": forks["n"] if forks else 0}


def main() -> int:
    """Parse the flags, run once, print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="run the dealflow code in this directory")
    parser.add_argument("--latency-ms", type=int, default=3000)
    args = parser.parse_args()
    with throwaway_database() as url:
        result = reproduce(url, args.source, args.latency_ms)
    for name, value in result.items():
        print(f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
