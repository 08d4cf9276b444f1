"""The worker supervisor: what it restarts, what it gives up on, how long it waits."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
import pytest
from procrastinate.exceptions import ConnectorException

from dealflow.service.worker_loop import (
    SIDE_TASK_FAILED,
    Backoff,
    WorkerHealth,
    WorkersFailed,
    is_connection_error,
    one_line,
    supervise,
)

QUICK = Backoff(initial=0.001, cap=0.002)


def _wrapped(cause: BaseException) -> ConnectorException:
    try:
        raise ConnectorException from cause
    except ConnectorException as exc:
        return exc


class _Queue:
    """Stands in for the procrastinate app: `job_manager.check_connection_async`."""

    def __init__(self, down_checks: int = 0) -> None:
        self.job_manager, self.down_checks, self.checks = self, down_checks, 0

    async def check_connection_async(self) -> bool:
        self.checks += 1
        if self.checks <= self.down_checks:
            raise _wrapped(psycopg.OperationalError("connection refused"))
        return True


def test_a_lost_connection_is_told_from_a_bug() -> None:
    assert is_connection_error(_wrapped(psycopg.OperationalError("server closed")))
    assert is_connection_error(ConnectionRefusedError())
    assert not is_connection_error(_wrapped(psycopg.errors.UndefinedTable("no table")))
    assert not is_connection_error(ValueError("bug"))
    assert one_line(_wrapped(psycopg.OperationalError("gone\nmore"))) == "OperationalError: gone"


def test_the_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.5, cap=30)
    assert 0.25 <= backoff.delay(0) <= 0.5
    assert 2 <= backoff.delay(3) <= 4
    assert all(15 <= backoff.delay(n) <= 30 for n in (10, 100, 10_000))


def test_workers_that_lose_the_database_run_again_once_it_answers() -> None:
    runs: list[int] = []

    async def run() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise _wrapped(psycopg.OperationalError("terminating connection"))
        await asyncio.sleep(3600)

    async def main() -> tuple[WorkerHealth, _Queue]:
        health, queue = WorkerHealth(2), _Queue(down_checks=2)
        task = asyncio.create_task(supervise(queue, run, health, QUICK))  # type: ignore[arg-type]
        while len(runs) < 3:
            await asyncio.sleep(0.01)
        assert health.state == "running"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return health, queue

    health, queue = asyncio.run(main())
    assert health.restarts == 2 and health.state == "stopped"
    assert queue.checks == 4  # two while it was down, one after each outage


def _stops_itself(error: BaseException) -> Any:
    """A worker that logs a side task failure as procrastinate does, then returns."""
    async def run() -> None:
        logging.getLogger("procrastinate.worker.dealflow-test").error(
            "Side task failed", exc_info=error, extra={"action": SIDE_TASK_FAILED})
    return run


def test_a_worker_stopped_by_a_bug_in_a_side_task_gives_up() -> None:
    health = WorkerHealth(1)
    with pytest.raises(WorkersFailed, match="ZeroDivisionError"):
        asyncio.run(supervise(_Queue(), _stops_itself(ZeroDivisionError("x")),  # type: ignore[arg-type]
                              health, QUICK))
    assert health.state == "failed" and "ZeroDivisionError" in health.reason


def test_a_worker_stopped_by_a_lost_connection_in_a_side_task_runs_again() -> None:
    health, calls = WorkerHealth(1), []
    side = _stops_itself(_wrapped(psycopg.OperationalError("server closed")))

    async def run() -> None:
        calls.append(1)
        if len(calls) == 1:
            await side()
            return
        raise ValueError("a bug, the second time")

    with pytest.raises(WorkersFailed, match="ValueError"):
        asyncio.run(supervise(_Queue(), run, health, QUICK))  # type: ignore[arg-type]
    assert len(calls) == 2 and health.restarts == 1


def test_missing_queue_tables_are_not_waited_for() -> None:
    class Empty(_Queue):
        async def check_connection_async(self) -> bool:
            return False

    async def run() -> None:
        raise _wrapped(psycopg.OperationalError("terminating connection"))

    with pytest.raises(WorkersFailed, match="tables are missing"):
        asyncio.run(supervise(Empty(), run, WorkerHealth(1), QUICK))  # type: ignore[arg-type]
