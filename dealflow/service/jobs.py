"""The work of the service as procrastinate jobs: one task drives one thread.

Every command the API accepts (start a deal, answer a review, deliver an
event) and every thread found stalled becomes a `dealflow.drive` job whose
procrastinate `lock` is the thread id, so jobs of one thread run one at a time
and in order; the thread's fenced lease (`state.leases`) guards the rest.

`dealflow.sweep` runs every few seconds on some worker: it hands the jobs of
workers that stopped sending heartbeats back to the queue (procrastinate's own
stalled-job API) and queues a `continue` for every thread that is mid-run with
no live process driving it and no job of its own queued or running (a killed
worker, a killed CLI; `upkeep.orphaned_threads`), and an `apply` for
every thread whose wait was claimed (a decision, an event) long ago but is
still waiting (the API node died between claiming and queueing).

`dealflow.timers` runs every other second: it schedules a `dealflow.deadline`
job at the due time of every deadline stored since (`scheduled_at`: the
queue's own timer, fired by whichever worker is alive), all in one batch
(`upkeep.schedule_deadlines`). A deadline job has no
procrastinate lock (a scheduled job with the thread's lock would hold back
every later job of the thread until it is due); the thread's lease orders it
with the rest.

`dealflow.notify` runs every other second too, on a queue of its own that
`run_workers` serves with one slot of its own in every worker process: it posts
the notifications that are due, each post bounded by the notifier's timeout and
each run by `NOTIFY_RUN_SECONDS`. A slow receiver delays notifications only;
the deadlines, the sweep and the deals' jobs never wait behind a post.

`dealflow.prune` (`dealflow.service.retention`) runs every ten minutes: with
DEALFLOW_RETENTION set, it prunes the checkpoint history of deals ended that long ago.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from dealflow.api import DealService, parse_deal
from dealflow.errors import Busy, NotWaiting, Unavailable
from dealflow.notify import deliver_due
from dealflow.service.queue_connector import queue_connector
from dealflow.service.rate_deferral import deferring, run_deferring
from dealflow.service.retention import retention_task
from dealflow.service.upkeep import DEADLINE, orphaned_threads, schedule_deadlines
from state.config import Settings
from state.database import session_connection
from state.migrate import migration_lock

DRIVE = "dealflow.drive"
SWEEP_EVERY = "* * * * * */5"  # cron with a seconds column (the 6th): every 5 s
TIMERS_EVERY = "* * * * * */2"
NOTIFY = "dealflow.notify"
NOTIFY_EVERY = "* * * * * */2"
NOTIFY_QUEUE = "notify"  # served by a worker of its own (`run_workers`)
WORK_QUEUES = [procrastinate.jobs.DEFAULT_QUEUE]  # every other task's
NOTIFY_RUN_SECONDS = 10.0  # a notify run starts no post after this long
UNAPPLIED_AFTER_SECONDS = 30  # a claimed wait whose job is this late is applied by the sweep
_log = logging.getLogger(__name__)
RETRY = procrastinate.RetryStrategy(max_attempts=40, wait=3,
                                    retry_exceptions={Busy, Unavailable, OSError})


def build_queue(url: str, settings: Settings | None = None) -> procrastinate.App:
    """The procrastinate app on `url` (pool sizes, direct URL: `settings`'), with our tasks."""
    app = procrastinate.App(connector=queue_connector(url, settings or Settings()))

    @app.task(name=DRIVE, pass_context=True, retry=RETRY)
    def drive(context: procrastinate.JobContext, action: str, thread_id: str,
              payload: dict[str, Any]) -> str:
        """Run one command on a thread with this worker's `DealService`.

        Held back by a provider's rate limit, the thread is continued later (`rate_deferral`).
        """
        service: DealService = context.additional_context["service"]
        return run_deferring(lambda: run_action(deferring(service), action, thread_id, payload),
                             lambda after: defer(context.app, "continue", thread_id, {},
                                                 after=after))

    @app.periodic(cron=SWEEP_EVERY, periodic_id="sweep")
    @app.task(name="dealflow.sweep", queueing_lock="dealflow.sweep", pass_context=True)
    async def sweep(context: procrastinate.JobContext, timestamp: int) -> int:
        """Requeue the jobs of dead workers and continue threads nobody drives."""
        service: DealService = context.additional_context["service"]
        stalled = list(await context.app.job_manager.get_stalled_jobs(
            seconds_since_heartbeat=service.settings.worker_stalled_seconds))
        for job in stalled:
            await context.app.job_manager.retry_job(job)
        orphans = await orphaned_threads(context.app, service)
        for thread_id in orphans:
            await defer_async(context.app, "continue", thread_id, {})
        unapplied = await asyncio.to_thread(service.data.waits.unapplied,
                                            UNAPPLIED_AFTER_SECONDS)
        for thread_id in unapplied:
            await defer_async(context.app, "apply", thread_id, {})
        return len(stalled) + len(orphans) + len(unapplied)

    @app.task(name=DEADLINE, pass_context=True, retry=RETRY)
    def deadline(context: procrastinate.JobContext, deadline_id: int) -> str:
        """Fire one deadline (if its wait is still open) with this worker's `DealService`.

        Held back by a provider's rate limit, it is fired later (`rate_deferral`).
        """
        service: DealService = context.additional_context["service"]
        return run_deferring(lambda: deferring(service).fire_deadline(deadline_id),
                             lambda after: _defer_deadline(context.app, deadline_id, after))

    _timer_tasks(app)
    retention_task(app)
    return app


def _timer_tasks(app: procrastinate.App) -> None:
    """The periodic `timers` (deadlines) and `notify` (posts) tasks, kept apart."""

    @app.periodic(cron=TIMERS_EVERY, periodic_id="timers")
    @app.task(name="dealflow.timers", queueing_lock="dealflow.timers", pass_context=True)
    async def timers(context: procrastinate.JobContext, timestamp: int) -> str:
        """Schedule the deadlines stored since (posting is `dealflow.notify`'s)."""
        service: DealService = context.additional_context["service"]
        queued = await schedule_deadlines(context.app, service)
        return f"{queued} deadlines scheduled"

    @app.periodic(cron=NOTIFY_EVERY, periodic_id="notify")
    @app.task(name=NOTIFY, queue=NOTIFY_QUEUE, queueing_lock=NOTIFY, pass_context=True)
    async def notify(context: procrastinate.JobContext, timestamp: int) -> str:
        """Post the notifications that are due, for `NOTIFY_RUN_SECONDS` at most."""
        service: DealService = context.additional_context["service"]
        sent, failed = await asyncio.to_thread(
            deliver_due, service.data.outbox, service.notifier,
            budget_seconds=NOTIFY_RUN_SECONDS)
        return f"{sent} notifications sent, {failed} failed"


async def run_workers(app: procrastinate.App, options: dict[str, Any]) -> None:
    """Run this process's workers until stopped: `options`, plus one slot for posts.

    The first worker serves `WORK_QUEUES` with `options`, the second `NOTIFY_QUEUE`
    with one slot of its own, so a post never takes a slot deadlines or deals need.
    Either worker ending (a signal stops the first; a failure) stops the other
    gracefully; cancelling this stops both the same way.
    """
    notifier_options = options | {
        "queues": [NOTIFY_QUEUE], "concurrency": 1, "install_signal_handlers": False,
        "name": f"{options.get('name') or 'dealflow'}-notify"}
    workers = [asyncio.create_task(app.run_worker_async(**options | {"queues": WORK_QUEUES})),
               asyncio.create_task(app.run_worker_async(**notifier_options))]
    try:
        await asyncio.wait(workers, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for worker in workers:
            worker.cancel()  # procrastinate stops gracefully: the jobs at hand finish
        ended = await asyncio.gather(*workers, return_exceptions=True)
    for outcome in ended:
        if isinstance(outcome, Exception):
            raise outcome


def run_action(service: DealService, action: str, thread_id: str,
               payload: dict[str, Any]) -> str:
    """Do what the job asks; a command the thread has outgrown is done, not failed."""
    try:
        if action == "start":
            report = service.start(parse_deal(payload["deal"]),
                                   supervisor=payload.get("supervisor"))
        elif action == "resume":
            report = service.resume(thread_id, payload["answer"])
        elif action == "event":
            report = service.event(thread_id, payload["event"])
        elif action == "continue":
            report = service.continue_thread(thread_id)
        elif action == "apply":
            return service.apply_claim(thread_id)
        else:
            raise ValueError(f"unknown action {action!r}")
    except NotWaiting as exc:  # answered or moved on meanwhile: nothing left to do
        _log.info("%s on %s: %s", action, thread_id, exc)
        return f"skipped: {exc}"
    return report.status


def defer(app: procrastinate.App, action: str, thread_id: str,
          payload: dict[str, Any], *, after: float | None = None) -> int | None:
    """Queue `action` on the thread (None if the same `continue` is already queued).

    `after`: seconds from now the job is due (default: at once).
    """
    later: dict[str, Any] = {"schedule_in": {"seconds": after}} if after else {}
    try:
        return app.configure_task(DRIVE, **_options(action, thread_id), **later).defer(
            action=action, thread_id=thread_id, payload=payload)
    except AlreadyEnqueued:
        return None


def _defer_deadline(app: procrastinate.App, deadline_id: int, after: float) -> int | None:
    """Queue the deadline's job again, `after` seconds from now."""
    try:
        return app.configure_task(DEADLINE, queueing_lock=f"deadline:{deadline_id}",
                                  schedule_in={"seconds": after}).defer(deadline_id=deadline_id)
    except AlreadyEnqueued:
        return None


async def defer_async(app: procrastinate.App, action: str, thread_id: str,
                      payload: dict[str, Any]) -> int | None:
    """`defer` from async code."""
    try:
        return await app.configure_task(DRIVE, **_options(action, thread_id)).defer_async(
            action=action, thread_id=thread_id, payload=payload)
    except AlreadyEnqueued:
        return None


def _options(action: str, thread_id: str) -> dict[str, Any]:
    options: dict[str, Any] = {"lock": thread_id}
    if action in ("continue", "apply"):
        options["queueing_lock"] = f"{action}:{thread_id}"
    return options


def apply_queue_schema(service: DealService, app: procrastinate.App) -> None:
    """Create procrastinate's tables once (under dealflow's migration lock, a session's)."""
    direct = service.settings.direct_database_url
    with (session_connection(direct) if direct else service.pool.connection()) as conn, \
            migration_lock(conn):
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') AS found").fetchone()
        if row is None or row["found"] is None:
            conn.execute(app.schema_manager.get_schema().encode(), prepare=False)
