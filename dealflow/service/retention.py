"""The scheduled prune: `dealflow prune` as a periodic procrastinate task of the workers.

With `DEALFLOW_RETENTION` set (`90d`; `0s` prunes every ended deal), some worker
runs `dealflow.prune` every `PRUNE_EVERY`: the checkpoint history of deals that
ended at least that long ago goes, as `dealflow prune --ended-before` does
(`dealflow.prune`: batches, skipped threads, the row per pruned thread; no
archive). A run starts no batch after `PRUNE_RUN_SECONDS`, so it never holds a
worker slot for long; what is left goes on the next run. Unset, the task runs
and does nothing.
"""

from __future__ import annotations

import asyncio

import procrastinate

from dealflow.api import DealService
from dealflow.prune import run_retention

PRUNE = "dealflow.prune"
PRUNE_EVERY = "*/10 * * * *"  # every ten minutes
PRUNE_RUN_SECONDS = 60.0


def retention_task(app: procrastinate.App) -> None:
    """Add the periodic `dealflow.prune` task to the queue `app`."""

    @app.periodic(cron=PRUNE_EVERY, periodic_id="prune")
    @app.task(name=PRUNE, queueing_lock=PRUNE, pass_context=True)
    async def prune(context: procrastinate.JobContext, timestamp: int) -> str:
        """Prune what `DEALFLOW_RETENTION` lets go, for `PRUNE_RUN_SECONDS` at most."""
        service: DealService = context.additional_context["service"]
        return await asyncio.to_thread(run_retention, service.pool,
                                       service.settings.retention, PRUNE_RUN_SECONDS)
