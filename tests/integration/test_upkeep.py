"""The sweep's and timers' scans and the retention's job deletion, on the test's Postgres.

The scans are `dealflow.service.upkeep`'s; the deletion of finished jobs,
`dealflow.service.retention`'s.

The queue is procrastinate's own tables in the test database, driven through its
job manager as a worker would (fetch, finish), with no worker running: what the
scans see is what the test put there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import procrastinate
from procrastinate.jobs import Status

from dealflow.api import DealService
from dealflow.service.jobs import apply_queue_schema, build_queue, defer_async
from dealflow.service.retention import remove_finished_jobs
from dealflow.service.upkeep import orphaned_threads, schedule_deadlines
from tests.helpers import make_deal

T = TypeVar("T")


def with_queue(service: DealService, url: str,
               work: Callable[[procrastinate.App], Awaitable[T]]) -> T:
    """Run `work` with the service's queue open (its tables created first)."""
    queue = build_queue(url)
    apply_queue_schema(service, queue)

    async def run() -> T:
        async with queue.open_async():
            return await work(queue)

    return asyncio.run(run())


def test_a_thread_with_a_queued_or_running_job_is_not_orphaned(
        service: DealService, database_url: str) -> None:
    waiting, _ = service.register(make_deal("UK-Q"))  # its start job waits for a slot
    bare, _ = service.register(make_deal("UK-B"))  # registered, its job never queued
    held, _ = service.register(make_deal("UK-H"))  # a live process holds its lease

    async def scans(queue: procrastinate.App) -> list[list[str]]:
        seen = []
        job = await defer_async(queue, "start", waiting.thread_id, {})
        seen.append(await orphaned_threads(queue, service))  # queued: todo
        worker = await queue.job_manager.register_worker()
        running = await queue.job_manager.fetch_job(None, worker)
        assert running is not None and running.id == job
        seen.append(await orphaned_threads(queue, service))  # running: doing
        await queue.job_manager.finish_job(running, Status.FAILED, delete_job=False)
        seen.append(await orphaned_threads(queue, service))  # failed: nothing drives it
        return seen

    with service.holding(held.thread_id):
        todo, doing, failed = with_queue(service, database_url, scans)
    assert todo == [bare.thread_id]
    assert doing == [bare.thread_id]
    assert sorted(failed) == sorted([waiting.thread_id, bare.thread_id])


def _deadline_rows(service: DealService) -> list[dict[str, Any]]:
    with service.pool.connection() as conn:
        return list(conn.execute(
            "SELECT d.id, d.job_id, d.due_at, j.scheduled_at, j.queueing_lock, j.task_name,"
            " j.args ->> 'deadline_id' AS deadline_arg, d.xmin::text AS recorded_by,"
            " j.xmin::text AS queued_by FROM dealflow_deadlines d"
            " LEFT JOIN procrastinate_jobs j ON j.id = d.job_id ORDER BY d.id").fetchall())


def test_the_timers_queue_every_stored_deadline_in_one_batch(
        service: DealService, database_url: str) -> None:
    for n in range(3):  # each waits for its signature: a reminder and an expiry
        assert service.start(make_deal(f"UK-T{n}")).status == "waiting_signature"

    async def twice(queue: procrastinate.App) -> tuple[int, int]:
        return (await schedule_deadlines(queue, service),
                await schedule_deadlines(queue, service))

    assert with_queue(service, database_url, twice) == (6, 0)
    rows = _deadline_rows(service)
    assert len(rows) == 6
    for row in rows:
        assert row["job_id"] is not None and row["task_name"] == "dealflow.deadline"
        assert row["scheduled_at"] == row["due_at"]
        assert row["queueing_lock"] == f"deadline:{row['id']}"
        assert row["deadline_arg"] == str(row["id"])
    # one transaction queued the six jobs, one recorded them: not two a deadline
    assert len({row["queued_by"] for row in rows}) == 1
    assert len({row["recorded_by"] for row in rows}) == 1


def test_a_deadline_queued_by_a_run_that_died_gets_the_queued_job_recorded(
        service: DealService, database_url: str) -> None:
    assert service.start(make_deal("UK-D")).status == "waiting_signature"
    first, second = (due.id for due in service.data.deadlines.unqueued())

    async def died_then_timers(queue: procrastinate.App) -> tuple[int, int]:
        orphan = await queue.configure_task(  # queued, its id never recorded
            "dealflow.deadline", queueing_lock=f"deadline:{first}").defer_async(
            deadline_id=first)
        return orphan, await schedule_deadlines(queue, service)

    orphan, queued = with_queue(service, database_url, died_then_timers)
    assert queued == 2
    jobs = {row["id"]: row for row in _deadline_rows(service)}
    assert jobs[first]["job_id"] == orphan
    assert jobs[second]["job_id"] is not None and jobs[second]["job_id"] != orphan
    assert service.data.deadlines.unqueued() == []


def test_the_retention_deletes_finished_jobs_and_with_them_the_deal_they_named(
        service: DealService, database_url: str) -> None:
    ended, _ = service.register(make_deal("UK-R", client="Jane Roe Consulting"))
    queued, _ = service.register(make_deal("UK-W"))

    async def jobs(queue: procrastinate.App) -> list[str]:
        listed = await queue.job_manager.list_jobs_async()
        return sorted(f"{job.lock}:{job.status}" for job in listed)

    async def scenario(queue: procrastinate.App) -> list[Any]:
        await defer_async(queue, "start", ended.thread_id,
                          {"deal": {"client": "Jane Roe Consulting"}})
        worker = await queue.job_manager.register_worker()
        running = await queue.job_manager.fetch_job(None, worker)
        assert running is not None
        await queue.job_manager.finish_job(running, Status.FAILED, delete_job=False)
        await defer_async(queue, "start", queued.thread_id, {})
        seen: list[Any] = []
        for retention in (None, timedelta(days=1), timedelta(0)):
            seen += [await remove_finished_jobs(queue, retention), await jobs(queue)]
        return seen

    off, after_off, day, after_day, now, after_now = with_queue(service, database_url, scenario)
    both = sorted([f"{ended.thread_id}:failed", f"{queued.thread_id}:todo"])
    assert (off, after_off) == ("finished jobs kept (DEALFLOW_RETENTION unset)", both)
    assert (day, after_day) == ("jobs finished 24 h ago or more deleted from the queue", both)
    assert now == "jobs finished 0 h ago or more deleted from the queue"
    assert after_now == [f"{queued.thread_id}:todo"]  # a job still to run stays
    with service.pool.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM procrastinate_jobs"
                           " WHERE args::text LIKE '%Jane Roe%'").fetchone()
    assert row is not None and row["n"] == 0
