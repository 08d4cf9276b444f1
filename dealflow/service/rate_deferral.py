"""Jobs a provider's rate limit holds back are deferred: no worker thread waits for a slot.

A job runs on `deferring(service)`, the worker's `DealService` with
`DealContext.defer_rate_limits` on: before an effect is claimed, if no slot of
its provider's limit (`agents.systems.rate_limits`) is due within
`SLEEP_AT_MOST` (1 s), or the provider's 429 paused it longer, the step raises
`RateLimited(wait)` instead of waiting. The graph neither retries it nor sends
the step to review: the run stops at its last checkpoint, the thread's lease is
released, and `run_deferring` queues the job's continuation `wait` seconds later
(stretched by up to `JITTER`, so the jobs waiting for the same slot do not all
come back at once) and returns: the worker's slot serves other jobs meanwhile.

A deal's job is continued as a `continue` of its thread (the command it carried,
a review's answer or an event, was applied already; its lock is the thread's, so
the thread's later jobs queue behind it); a deadline's job is queued again for
its deadline. The continuation settles the interrupted step as after any stop.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from agents.systems.rate_limits import RateLimited

if TYPE_CHECKING:
    from dealflow.api import DealService

JITTER = 0.2  # a deferral lasts the wait × 1 to 1 + JITTER
_log = logging.getLogger(__name__)


def run_deferring(work: Callable[[], str], again: Callable[[float], int | None]) -> str:
    """`work()`'s result, or, held back by a rate limit, the note that `again` continues it.

    `again(seconds)` queues the continuation that many seconds from now (its job
    id, or None if an equivalent job is queued already).
    """
    try:
        return work()
    except RateLimited as limited:
        seconds = limited.wait * (1 + random.uniform(0, JITTER))
        job = again(seconds)
        _log.info("%s: continued in %.1f s (job %s)", limited, seconds, job)
        return f"rate limited ({limited}): continued in {seconds:.1f} s"


def deferring(service: DealService) -> DealService:
    """`service` for one worker job: its effects are held back by a rate limit, not waited.

    The same pool, data layer and graph; only the run's `DealContext` differs.
    """
    job = copy.copy(service)
    job.context = dataclasses.replace(service.context, defer_rate_limits=True)
    return job
