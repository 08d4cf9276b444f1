"""What the periodic `dealflow.sweep` and `dealflow.timers` tasks look for, cheaply.

`orphaned_threads` (the sweep): threads the registry shows mid-run that nothing
drives. A thread with a `dealflow.drive` job queued or running (the job's
procrastinate `lock` is the thread id) is driven already, if only later, and
so is a thread whose lease a live process holds; what is left needs a
`continue`. Reading the queue's locks first (procrastinate's `list_locks`, two
queries) also spares a lease query per thread waiting for a worker slot.

`schedule_deadlines` (the timers): every stored deadline not yet queued gets a
`dealflow.deadline` job at its due time (`scheduled_at`: the queue's own timer),
all of them in one batch (procrastinate's `batch_defer_jobs_async`, one
statement) and their job ids recorded in one statement, not two transactions a
deadline. A deadline whose queueing lock (`deadline:<id>`) is taken already (a
run that died before recording its job) makes the batch fail as a whole; that
run then queues them one by one and records the queued job it finds.
"""

from __future__ import annotations

import asyncio

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from dealflow.api import DealService
from state.deadlines import Deadline
from state.leases import thread_is_held

DEADLINE = "dealflow.deadline"
BUSY_STATUSES = ("todo", "doing")  # a job in either will drive its thread


async def orphaned_threads(app: procrastinate.App, service: DealService) -> list[str]:
    """Threads the registry shows mid-run with no job queued or running and no live holder."""
    running = await asyncio.to_thread(service.registry.list, statuses=("running",))
    if not running:
        return []
    driven = await threads_with_jobs(app)
    idle = [row.thread_id for row in running if row.thread_id not in driven]
    return await asyncio.to_thread(
        lambda: [thread for thread in idle if not thread_is_held(service.pool, thread)])


async def threads_with_jobs(app: procrastinate.App) -> set[str]:
    """The locks (thread ids) of every job queued or running, whatever its due time."""
    found: set[str] = set()
    for status in BUSY_STATUSES:
        found.update(lock["name"] for lock in await app.job_manager.list_locks_async(
            status=status))
    return found


async def schedule_deadlines(app: procrastinate.App, service: DealService) -> int:
    """Queue a job at the due time of every stored deadline that has none yet, in one batch."""
    due = await asyncio.to_thread(service.data.deadlines.unqueued)
    if not due:
        return 0
    jobs = [_deadline_job(app, deadline) for deadline in due]
    try:
        ids = [job.id for job in await app.job_manager.batch_defer_jobs_async(jobs=jobs)]
    except AlreadyEnqueued:  # one of them was queued by a run that died before recording it
        ids = [await _defer_one(app, job) for job in jobs]
    await asyncio.to_thread(service.data.deadlines.queued_all,
                            [(deadline.id, job) for deadline, job in zip(due, ids, strict=True)])
    return len(due)


def _deadline_job(app: procrastinate.App, deadline: Deadline) -> procrastinate.jobs.Job:
    """The deadline's job, as `configure_task` would defer it (no thread lock: see `jobs`)."""
    return app.configure_task(DEADLINE, schedule_at=deadline.due_at,
                              queueing_lock=f"deadline:{deadline.id}",
                              ).make_new_job(deadline_id=deadline.id)


async def _defer_one(app: procrastinate.App, job: procrastinate.jobs.Job) -> int | None:
    """Queue one deadline's job; if its queueing lock is taken, the queued job's id."""
    try:
        return (await app.job_manager.defer_job_async(job=job)).id
    except AlreadyEnqueued:
        queued = await app.job_manager.list_jobs_async(queueing_lock=job.queueing_lock,
                                                       status="todo")
        return next((found.id for found in queued), None)
