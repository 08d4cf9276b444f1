"""A process's pools have a size and a wait: an exhausted pool fails after the wait, in one line.

Never a hang: a request that finds every connection of the pool in use waits
`DEALFLOW_POOL_TIMEOUT_SECONDS`, then fails with a line naming the setting to raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

from dealflow.api import DealService
from dealflow.cli import main
from dealflow.service.queue_connector import QueuePool
from state.config import Settings
from state.database import PoolExhausted, open_pool


@contextmanager
def held(connection: Callable[[], AbstractContextManager[Any]]) -> Iterator[None]:
    """One connection taken and held by another thread until the block ends."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with connection():
            taken.set()
            done.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        done.set()
        holder.join()


def test_an_exhausted_pool_waits_its_timeout_then_fails_in_one_line(database_url: str) -> None:
    pool = open_pool(database_url, max_size=1, wait_seconds=0.5)
    try:
        with held(pool.connection):
            started = time.monotonic()
            with pytest.raises(PoolExhausted) as failed, pool.connection():
                pass
            waited = time.monotonic() - started
        assert 0.5 <= waited < 3, waited
        message = str(failed.value)
        assert "\n" not in message
        assert message == ("no database connection free after 0.5 s: all 1 of this process's "
                           "pool are in use (raise DEALFLOW_POOL_MAX_SIZE, or "
                           "DEALFLOW_POOL_TIMEOUT_SECONDS to wait longer)")
        with pool.connection() as conn:  # given back: served again
            assert conn.execute("SELECT 1 AS n").fetchone() == {"n": 1}
    finally:
        pool.close()


def test_the_settings_size_the_service_pool_and_the_cli_says_which(database_url: str) -> None:
    settings = Settings(database_url=database_url, pool_max_size=1, pool_timeout_seconds=0.5)
    with DealService(settings) as service, held(service.pool.connection):
        assert service.pool.max_size == 1
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["status", "NOPE"], service=service)
        assert code == 5
        line = err.getvalue()
        assert line.count("\n") == 1 and "DEALFLOW_POOL_MAX_SIZE" in line, line
        assert line.startswith("dealflow status: error: no database connection free"), line


def test_the_queue_pool_names_its_own_setting(database_url: str) -> None:
    async def exhaust() -> str:
        async with QueuePool(database_url, min_size=1, max_size=1, timeout=0.3,
                             open=False) as pool, pool.connection():
            with pytest.raises(PoolExhausted) as failed:
                await pool.getconn()
            return str(failed.value)

    message = asyncio.run(exhaust())
    assert "DEALFLOW_QUEUE_POOL_MAX_SIZE" in message and "\n" not in message
