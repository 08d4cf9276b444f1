"""Follow the context changes of a deal (or one key) from another process.

Postgres LISTEN/NOTIFY wakes the subscriber; the change log is the source of
truth. After every wake-up, and after every reconnect, the subscriber reads the
log past the last change it delivered, so no change is missed or delivered twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import psycopg
from psycopg.rows import dict_row

from state.fact_store import NOTIFY_CHANNEL, Change, fetch_changes, split_key


class FactSubscription:
    """An iterator over the changes of one deal or one key, in commit order."""

    def __init__(self, url: str, *, deal_id: str | None = None, key: str | None = None,
                 after: int = 0, poll_seconds: float = 1.0, reconnect_seconds: float = 0.5) -> None:
        """Follow `deal_id` (or `key`) from change id `after` (0 = from the start)."""
        if key is not None:
            deal_id = split_key(key)[0]
        if deal_id is None:
            raise ValueError("subscribe to a deal_id or a key")
        self.url, self.deal_id, self.key = url, deal_id, key
        self.last_change_id = after
        self.poll_seconds = poll_seconds
        self.reconnect_seconds = reconnect_seconds
        self.reconnects = 0

    def follow(self, stop: Callable[[], bool] = lambda: False,
               on_reconnect: Callable[[int], None] = lambda last: None) -> Iterator[Change]:
        """Yield changes as they commit until `stop()` is true; reconnect on failures.

        `on_reconnect(last_change_id)` is called each time a lost connection is
        replaced (the catch-up then starts after that change).
        """
        while not stop():
            try:
                yield from self._session(stop)
            except psycopg.OperationalError:
                self.reconnects += 1
                time.sleep(self.reconnect_seconds)
                on_reconnect(self.last_change_id)

    def _session(self, stop: Callable[[], bool]) -> Iterator[Change]:
        with psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                             application_name="dealflow-watch") as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            yield from self._catch_up(conn)  # after LISTEN: nothing can slip in between
            while not stop():
                woken = False
                for notice in conn.notifies(timeout=self.poll_seconds):
                    woken = woken or self._concerns(notice.payload)
                if woken:
                    yield from self._catch_up(conn)
                else:
                    conn.execute("SELECT 1")  # notice a dropped connection while idle

    def _concerns(self, payload: str) -> bool:
        try:
            data = json.loads(payload)
        except ValueError:
            return True
        return bool(data.get("deal_id") == self.deal_id)

    def _catch_up(self, conn: psycopg.Connection[dict]) -> Iterator[Change]:
        for change in fetch_changes(conn, deal_id=self.deal_id, key=self.key,
                                    after=self.last_change_id):
            self.last_change_id = change.change_id
            yield change
