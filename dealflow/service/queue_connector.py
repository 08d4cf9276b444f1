"""procrastinate's connector for a database reached through a transaction pooler (PgBouncer).

The connector's pool (deferring, fetching and finishing jobs, heartbeats: one
transaction each) may go through a pooler in transaction mode; its LISTEN may
not, for a server session outlives a transaction there only by chance:
`DirectListenConnector` listens on a connection of its own to the direct URL
(`DEALFLOW_DIRECT_DATABASE_URL`). `QueuePool` is the pool, whose exhausted wait
fails with a line naming `DEALFLOW_QUEUE_POOL_MAX_SIZE`. `queue_connector` picks
the connector the settings call for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import procrastinate
import psycopg
from procrastinate.connector import Notify
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from state.config import Settings, env_var
from state.database import (
    RECONNECT_SECONDS,
    connection_kwargs,
    pool_options,
    pool_timeout,
)

LISTEN_CHECK_SECONDS = 30.0  # an idle listener checks its connection this often


class QueuePool(AsyncConnectionPool):
    """psycopg_pool's async pool; a wait that outlasts its timeout names the setting."""

    async def getconn(self, timeout: float | None = None) -> Any:
        """psycopg_pool's `getconn`, its timeout's message saying what to change."""
        try:
            return await super().getconn(timeout)
        except PoolTimeout:
            waited = self.timeout if timeout is None else timeout
            raise pool_timeout(self.get_stats(), waited, env_var("queue_pool_max_size")
                               ) from None


class DirectListenConnector(procrastinate.PsycopgConnector):
    """procrastinate's psycopg connector whose LISTEN runs on a direct connection."""

    def __init__(self, *, listen_url: str, listen_kwargs: dict[str, Any],
                 **pool_args: Any) -> None:
        """`pool_args` as `PsycopgConnector`'s; LISTEN on `listen_url` with `listen_kwargs`."""
        super().__init__(**pool_args)
        self._listen_url, self._listen_kwargs = listen_url, listen_kwargs

    async def listen_notify(self, on_notification: Notify, channels: Iterable[str]) -> None:
        """LISTEN on `channels` and hand on every notification, until cancelled.

        As procrastinate's own: a connection that cannot be opened fails the
        listener (the worker stops, and `worker_loop.supervise` runs it again);
        one lost while listening is opened again.
        """
        names = list(channels)
        while True:
            async with await psycopg.AsyncConnection.connect(
                    self._listen_url, **{**self._listen_kwargs, "autocommit": True}) as conn:
                for name in names:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
                try:
                    while True:
                        async for notice in conn.notifies(timeout=LISTEN_CHECK_SECONDS):
                            await on_notification(channel=notice.channel,
                                                  payload=notice.payload)
                        await conn.execute("SELECT 1")
                except psycopg.OperationalError:
                    continue  # the connection is gone: open another


def queue_connector(url: str, settings: Settings) -> procrastinate.PsycopgConnector:
    """The queue's connector: its pool on `url`; LISTEN direct when `url` is a pooler's."""
    pooled = pool_options(settings.model_copy(update={"database_url": url}))["pooled"]
    pool_args: dict[str, Any] = {
        "conninfo": url, "kwargs": _procrastinate_kwargs(pooled), "pool_factory": QueuePool,
        "min_size": min(settings.pool_min_size, settings.queue_pool_max_size),
        "max_size": settings.queue_pool_max_size, "timeout": settings.pool_timeout_seconds,
        "reconnect_timeout": RECONNECT_SECONDS}  # back soon after an outage (state.database)
    if not pooled:
        return procrastinate.PsycopgConnector(**pool_args)
    return DirectListenConnector(listen_url=str(settings.direct_database_url),
                                 listen_kwargs=_procrastinate_kwargs(False), **pool_args)


def _procrastinate_kwargs(pooled: bool) -> dict[str, Any]:
    """Our connection settings procrastinate takes (it sets the rest; prepares, if direct)."""
    return {k: v for k, v in connection_kwargs(pooled).items() if k in (
        "application_name", "options", "connect_timeout") or (pooled and k == "prepare_threshold")}
