"""The queue's failed jobs, and retrying one (procrastinate's public job manager API).

A `dealflow.drive` job fails when its command raised something it does not
retry (a bug, a payload the thread refuses, procrastinate's 40 retries spent).
The console lists the failed jobs, newest first, with the deal each one is for
(its `thread_id` argument), and retries one: procrastinate's
`retry_job_by_id_async` sets it to be done again now, with its lock (the
thread), so it still runs after the thread's other jobs. The retry is audited
on the job's deal under the operator's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import procrastinate
import psycopg
from procrastinate.exceptions import ConnectorException

from dealflow.api import DealService
from dealflow.console_actions import Done, audit_action
from dealflow.errors import NotFound, NotWaiting

SHOWN = 100  # the newest failed jobs the console lists


@dataclass(frozen=True)
class FailedJob:
    """One failed job as the console lists it."""

    id: int
    task: str
    action: str
    deal_id: str | None
    attempts: int
    scheduled_at: datetime | None
    args: str


async def failed_jobs(service: DealService, queue: procrastinate.App) -> list[FailedJob]:
    """The newest failed jobs (at most `SHOWN`), newest first."""
    jobs = await queue.job_manager.list_jobs_async(status="failed")
    newest = sorted(jobs, key=lambda job: job.id or 0, reverse=True)[:SHOWN]
    found = []
    for job in newest:
        deal = await anyio.to_thread.run_sync(_deal_of, service, job.task_kwargs)
        found.append(FailedJob(
            id=job.id or 0, task=job.task_name, action=str(job.task_kwargs.get("action", "")),
            deal_id=deal, attempts=job.attempts, scheduled_at=job.scheduled_at,
            args=", ".join(f"{k}={_short(v)}" for k, v in sorted(job.task_kwargs.items()))))
    return found


async def retry_failed_job(service: DealService, queue: procrastinate.App, job_id: int,
                           operator: str) -> Done:
    """Queue the failed job `job_id` again, now; `NotWaiting` if it has not failed."""
    found = list(await queue.job_manager.list_jobs_async(id=job_id)) \
        if 0 < job_id < 2 ** 63 else []
    if not found:
        raise NotFound(f"no job {job_id}")
    job = found[0]
    if job.status != "failed":
        raise NotWaiting(f"job {job_id} is {job.status}, not failed: nothing to retry")
    try:
        await queue.job_manager.retry_job_by_id_async(job_id, retry_at=datetime.now(UTC))
    except (ConnectorException, psycopg.Error) as exc:
        raise NotWaiting(f"job {job_id} could not be queued again: "
                         f"{str(exc).splitlines()[0][:200]}") from None
    deal = await anyio.to_thread.run_sync(_deal_of, service, job.task_kwargs)
    if deal is not None:
        row = await anyio.to_thread.run_sync(service.deal, deal)
        await anyio.to_thread.run_sync(lambda: audit_action(
            service, row, operator, "retry_job", detail={"job_id": job_id,
                                                         "task": job.task_name}))
    return Done(f"job {job_id} ({job.task_name}) queued again")


def _deal_of(service: DealService, kwargs: dict[str, Any]) -> str | None:
    """The deal a job's `thread_id` argument names, if it names a registered one."""
    thread = kwargs.get("thread_id")
    row = service.registry.find(thread) if isinstance(thread, str) and thread else None
    return row.deal_id if row else None


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else f"{text[:79]}…"
