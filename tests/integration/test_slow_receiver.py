"""Deadlines fire on time behind a slow notification receiver (issue 28, defect 3).

Notifications are posted by their own periodic job on their own queue, served by
a worker slot of its own, so a receiver that takes seconds per post delays other
notifications, never a deadline. A real `dealflow serve` with one worker slot (as
`dealflow worker --concurrency 1`), a local receiver that answers each post after
3 s, twelve notifications due when it starts, and a review that expires after 6 s.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from dealflow.api import DealService
from state.config import Settings
from tests.helpers import make_deal
from tests.integration.fencing import wait_until
from tests.integration.service_procs import Api, Receiver, stop_process
from tests.integration.test_deadlines import OFF

QUEUED = 12  # review requests due at the start: 36 s of posting at 3 s a post
EXPIRE = timedelta(seconds=6)
MAX_LATE = timedelta(seconds=10)  # before the fix: about 30 s, behind the posts


def test_an_expiry_fires_on_time_behind_a_slow_receiver(
        api_factory: Any, service: DealService, settings: Settings) -> None:
    for n in range(QUEUED):  # each waits for a review and announces it: a notification due
        service.start(make_deal(f"SLOW-{n}", "80000.00"))
    expiring = settings.model_copy(update={"review_expire_after": EXPIRE})
    with Receiver(delay_seconds=3) as receiver, DealService(expiring) as starter:
        api: Api = api_factory(workers=1, **OFF | {"DEALFLOW_NOTIFY_URL": receiver.url})
        wait_until(lambda: receiver.posts, 120, "the posts to begin")
        starter.start(make_deal("SLOW-X", "80000.00"))  # its expiry is due in 6 s
        wait_until(lambda: _expired(service, "SLOW-X"), 180, "the expiry")
        late = _lateness(service, "SLOW-X")
        posts = len(receiver.posts)
        began = time.monotonic()
        stop_process(api.proc)  # SIGTERM: the notify run at hand finishes, bounded
        stopped = time.monotonic() - began
    print(f"\nan expiry behind a 3 s receiver with {QUEUED} posts queued: fired "
          f"{late.total_seconds():.1f} s after its due time ({posts} posts by then); "
          f"the service stopped in {stopped:.1f} s")
    assert late < MAX_LATE
    assert stopped < 25  # one bounded notify run, not the 36 s of queued posts


def _expired(service: DealService, deal_id: str) -> bool:
    time.sleep(0.25)  # a gentle poll: the service shares the machine's two cores
    return service.deal(deal_id).status == "expired"


def _lateness(service: DealService, deal_id: str) -> timedelta:
    """How long after its due time the deal's expiry fired (both on the database's clock)."""
    thread = service.deal(deal_id).thread_id
    expiry = next(d for d in service.data.deadlines.for_thread(thread)
                  if d.name == "review.expire")
    assert expiry.status == "fired" and expiry.settled_at is not None, expiry
    return expiry.settled_at - expiry.due_at
