"""The scheduled prune: `dealflow prune` as a periodic procrastinate task of the workers.

With `DEALFLOW_RETENTION` set (`90d`; `0s` prunes every ended deal), some worker
runs `dealflow.prune` every `PRUNE_EVERY`: the checkpoint history of deals that
ended at least that long ago goes, as `dealflow prune --ended-before` does
(`dealflow.prune`: batches, skipped threads, the row per pruned thread; no
archive). A run starts no batch after `PRUNE_RUN_SECONDS`, so it never holds a
worker slot for long; what is left goes on the next run. Unset, the task runs
and does nothing.

With `DEALFLOW_FORGET_AFTER` set too (`7y`; at least `DEALFLOW_RETENTION`), the
same run first forgets the deals that ended that long ago (`dealflow.prune_forget`:
every row of each written to `DEALFLOW_FORGET_ARCHIVE`, then deleted; a tombstone
stays), within the same time budget. Unset (the default), nothing is forgotten.

With `DEALFLOW_RETENTION` set, the run then deletes the queue's jobs that finished
(succeeded, failed, cancelled or aborted) at least that long ago, through
procrastinate's job manager: a job's arguments name its deal (a start job holds the
whole lead), so without this a forgotten deal would stay in `procrastinate_jobs`, and
the queue's tables would grow with every deal for good.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import timedelta

import procrastinate

from dealflow.api import DealService
from dealflow.prune import run_retention
from dealflow.prune_forget import forget_settings, run_forget

PRUNE = "dealflow.prune"
PRUNE_EVERY = "*/10 * * * *"  # every ten minutes
PRUNE_RUN_SECONDS = 60.0


def retention_task(app: procrastinate.App) -> None:
    """Add the periodic `dealflow.prune` task to the queue `app`."""

    @app.periodic(cron=PRUNE_EVERY, periodic_id="prune")
    @app.task(name=PRUNE, queueing_lock=PRUNE, pass_context=True)
    async def prune(context: procrastinate.JobContext, timestamp: int) -> str:
        """Forget, then prune, what the settings let go, for `PRUNE_RUN_SECONDS` at most."""
        service: DealService = context.additional_context["service"]
        said = await asyncio.to_thread(retention_run, service, PRUNE_RUN_SECONDS)
        return f"{said}; {await remove_finished_jobs(context.app, service.settings.retention)}"


def retention_run(service: DealService, budget_seconds: float) -> str:
    """One scheduled run: the forget (`DEALFLOW_FORGET_AFTER`), then the prune; what each did."""
    started = time.monotonic()
    forgot = run_forget(service.pool, forget_settings(service.settings), budget_seconds)
    left = max(0.0, budget_seconds - (time.monotonic() - started))
    return f"{forgot}; {run_retention(service.pool, service.settings.retention, left)}"


async def remove_finished_jobs(app: procrastinate.App, retention: timedelta | None) -> str:
    """Delete the queue's jobs that finished at least `retention` ago (None: keep them).

    Failed jobs go too: the console lists them for a retry until then. Procrastinate
    counts in whole hours; the age is rounded up, so no job goes before its time.
    """
    if retention is None:
        return "finished jobs kept (DEALFLOW_RETENTION unset)"
    hours = math.ceil(retention.total_seconds() / 3600)
    await app.job_manager.delete_old_jobs(hours, include_failed=True, include_cancelled=True,
                                          include_aborted=True)
    return f"jobs finished {hours} h ago or more deleted from the queue"
