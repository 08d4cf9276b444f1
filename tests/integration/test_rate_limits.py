"""Rate limits on real Postgres: the slot function, as two processes' limiters see it.

The limits with real worker processes are in `test_rate_limits_workers.py`.
"""

from __future__ import annotations

import time

import pytest

from agents.systems.rate_limits import RateLimit, RateLimited, RateLimiter
from dealflow.api import DealService
from state.database import open_pool


def _wait_of(limiter: RateLimiter) -> float:
    """The wait a slot of `limiter` would need now (raises if one is free: it is taken).

    The forecast (`next_slot_in`, which takes nothing) said the same a moment before.
    """
    forecast = limiter.next_slot_in()
    with pytest.raises(RateLimited) as caught:
        limiter.take(0.0, time.sleep)
    assert abs(forecast - caught.value.wait) < 0.2
    return caught.value.wait


def test_slots_are_shared_and_the_wait_is_until_the_oldest_answer_leaves_the_window(
        service: DealService, database_url: str) -> None:
    other_pool = open_pool(database_url, max_size=1)  # another process's connections
    try:
        ours = RateLimiter(service.pool, "hubspot", RateLimit(3, 2.0), stale=30)
        theirs = RateLimiter(other_pool, "hubspot", RateLimit(3, 2.0), stale=30)
        first, _ = ours.take(0.0, time.sleep)
        second, _ = theirs.take(0.0, time.sleep)
        third, _ = ours.take(0.0, time.sleep)
        assert len({first, second, third}) == 3
        assert 1.9 < _wait_of(theirs) <= 2.0  # in flight: counted as if its answer came now
        ours.release(first)
        time.sleep(0.5)
        ours.release(second)
        ours.release(third)
        started = time.monotonic()
        slot, slept = theirs.take(5.0, time.sleep)  # sleeps until the first leaves
        assert slot > third and 1.0 < slept <= 2.0
        assert time.monotonic() - started >= slept
        assert 0 < _wait_of(ours) <= 0.5  # until the second leaves
        stripe = RateLimiter(service.pool, "stripe", RateLimit(1, 2.0), stale=30)
        stripe.take(0.0, time.sleep)  # another provider has a limit of its own
    finally:
        other_pool.close()


def test_a_pause_holds_every_limiter_of_the_provider(service: DealService,
                                                     database_url: str) -> None:
    other_pool = open_pool(database_url, max_size=1)
    try:
        ours = RateLimiter(service.pool, "stripe", RateLimit(100, 1.0), stale=30)
        theirs = RateLimiter(other_pool, "stripe", RateLimit(100, 1.0), stale=30)
        ours.pause(1.5)
        assert 1.3 < _wait_of(theirs) <= 1.5
        ours.pause(0.5)  # a shorter pause does not shorten it
        assert 1.0 < _wait_of(theirs) <= 1.5
        _, slept = theirs.take(3.0, time.sleep)
        assert 1.0 < slept <= 1.5
    finally:
        other_pool.close()


def test_a_slot_never_released_lapses_after_its_window_and_the_stale_time(
        service: DealService) -> None:
    limiter = RateLimiter(service.pool, "asana", RateLimit(1, 0.5), stale=1.0)
    limiter.take(0.0, time.sleep)  # its process "dies" in flight: never released
    assert 0 < _wait_of(limiter) <= 0.5  # in flight: it may end any moment
    time.sleep(0.6)
    assert 0 < _wait_of(limiter) <= 0.5  # still counted: it may be under way
    time.sleep(1.0)
    limiter.take(0.0, time.sleep)  # lapsed after window + stale
    with service.pool.connection() as conn:
        rows = conn.execute("SELECT count(*) AS n FROM dealflow_rate_calls"
                            " WHERE provider = 'asana'").fetchone()
    assert rows is not None and rows["n"] == 1  # the lapsed one is gone


def test_the_forecast_takes_no_slot_and_holds_back_only_a_long_wait(
        service: DealService) -> None:
    limiter = RateLimiter(service.pool, "docusign", RateLimit(2, 3.0), stale=30)
    assert limiter.next_slot_in() == 0.0
    limiter.hold_back()  # a slot is free: nothing held back, nothing taken
    first, _ = limiter.take(0.0, time.sleep)
    limiter.hold_back()
    limiter.take(0.0, time.sleep)  # the second slot: the forecast took none
    with pytest.raises(RateLimited, match=r"^docusign: rate limit reached, next slot in"):
        limiter.hold_back()  # both in flight: a window from now
    limiter.release(first)
    short = RateLimiter(service.pool, "docusign", RateLimit(2, 0.5), stale=30)
    time.sleep(0.1)
    assert 0 < short.next_slot_in() <= 0.5
    short.hold_back()  # due within a second: slept for, not held back
