"""What comes in over HTTP: a review decision (the API, the inbox) and an e-sign event.

Each is one unit that no failure between its steps can split, so nothing is
lost and nothing is done twice:

1. **Claim.** The answer claims the deal's wait in one statement
   (`dealflow_claim_wait`): this is the record. A failure before or during it
   leaves nothing, the caller gets 503, and its retry is processed as new. An
   answer whose wait something else ended is refused (`Decided`, 409) with
   nothing recorded. The same answer claims again idempotently.
2. **Record** (webhooks). A delivery is recorded under its event id only after
   its claim, so a retry after a failed claim is never taken for a duplicate; a
   retry after a failed record claims again (the same answer) and records.
   The same event id with another envelope or event is refused (409).
3. **Queue.** The job that applies the claim is queued. If that fails, the
   claim still stands and the sweep (`dealflow.sweep`) queues an `apply` for
   every claimed wait still waiting after `UNAPPLIED_AFTER_SECONDS`: the
   answer is 202 with no job id, never an error that invites a retry against a
   wait that already ended.

A repeat of a delivery that was recorded, or of a decision already claimed,
is acknowledged (`duplicate`) without a second job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import procrastinate
import psycopg
from procrastinate.exceptions import ConnectorException

from dealflow.api import DealService
from dealflow.errors import DealflowError, NotFound
from dealflow.service import webhooks
from dealflow.service.jobs import UNAPPLIED_AFTER_SECONDS, defer_async

_log = logging.getLogger(__name__)
QUEUE_FAILED = (f"recorded; the job could not be queued now, the sweep queues it within "
                f"{UNAPPLIED_AFTER_SECONDS + 10} s")


class EventReused(DealflowError):
    """A webhook event id came again with another envelope or event."""

    exit_code = 4


@dataclass(frozen=True)
class Taken:
    """An answer that was recorded: its deal, its job (if one was queued now), and why not."""

    thread_id: str
    deal_id: str
    job_id: int | None
    duplicate: bool = False
    note: str | None = None


async def take_review(service: DealService, queue: procrastinate.App, deal_id: str,
                      answer: dict[str, Any]) -> Taken:
    """Claim the deal's pending review for `answer` and queue its `resume` job."""
    claimed = await anyio.to_thread.run_sync(service.claim_review, deal_id, answer)
    row = claimed.row
    if not claimed.fresh:  # the same decision again: its first request queued the job
        return Taken(row.thread_id, row.deal_id, None, duplicate=True)
    job, note = await _queue(queue, "resume", row.thread_id, {"answer": answer})
    return Taken(row.thread_id, row.deal_id, job, note=note)


async def take_event(service: DealService, queue: procrastinate.App,
                     event: webhooks.EsignEvent) -> Taken:
    """Claim the envelope's signature wait for `event`, record the delivery, queue its job."""
    pool = service.pool
    found = await anyio.to_thread.run_sync(webhooks.deal_of_envelope, pool, event.envelope_id)
    if found is None:
        raise NotFound(f"no envelope {event.envelope_id!r:.80}")
    deal_id, thread_id = found
    before = await anyio.to_thread.run_sync(webhooks.delivered, pool, event.event_id)
    if before is not None:
        return _repeat(before, event, thread_id, deal_id)
    await anyio.to_thread.run_sync(service.claim_event, thread_id, event.event)
    if not await anyio.to_thread.run_sync(webhooks.record_delivery, pool, event, deal_id):
        before = await anyio.to_thread.run_sync(webhooks.delivered, pool, event.event_id)
        return _repeat(before or event, event, thread_id, deal_id)  # a concurrent delivery
    job, note = await _queue(queue, "event", thread_id, {"event": event.event})
    if job is not None:
        try:
            await anyio.to_thread.run_sync(webhooks.note_job, pool, event.event_id, job)
        except psycopg.Error as exc:  # only a label for people: the job runs all the same
            _log.warning("delivery %s: job %s not noted: %s", event.event_id, job, exc)
    return Taken(thread_id, deal_id, job, note=note)


def _repeat(before: webhooks.EsignEvent, event: webhooks.EsignEvent, thread_id: str,
            deal_id: str) -> Taken:
    if (before.envelope_id, before.event) != (event.envelope_id, event.event):
        raise EventReused(f"event id {event.event_id!r:.80} was delivered before for "
                          f"{before.event} on envelope {before.envelope_id}; nothing was done")
    return Taken(thread_id, deal_id, None, duplicate=True)


async def _queue(queue: procrastinate.App, action: str, thread_id: str,
                 payload: dict[str, Any]) -> tuple[int | None, str | None]:
    """Queue the job; `(None, why)` if the queue failed (the claim stands, the sweep queues)."""
    try:
        return await defer_async(queue, action, thread_id, payload), None
    except (ConnectorException, psycopg.Error, OSError) as exc:
        _log.warning("%s on %s claimed but not queued (the sweep will): %s", action,
                     thread_id, exc)
        return None, QUEUE_FAILED
