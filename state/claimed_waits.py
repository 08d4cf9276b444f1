"""Waits this process claimed under a lease it holds, remembered for the run it drives next.

`DealService` claims a thread's wait (a review's decision, a signature event, an
expiry) before it resumes the thread, under the thread's lease. The resumed node
runs again from its top: it would open its wait again and claim it again with
the same resolution, two statements that change nothing. With the claim
remembered here, keyed by the thread, the wait and the lease's token, the node
skips both (`graph.waiting.WaitRun.ask`). What is not remembered goes to the
database as before: a claim made without a lease (the API's `claim_review`, which
a worker applies later), by another process, or under an earlier lease.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from state.waits import Wait

Key = tuple[str, str, int]  # thread, wait key, lease token


class ClaimedWaits:
    """The last `size` claims, each the winning wait as the claim returned it."""

    def __init__(self, size: int = 1024) -> None:
        """Remember at most `size` claims (the oldest go first)."""
        self._size = size
        self._claims: OrderedDict[Key, Wait] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, thread: str, key: str, token: int | None, wait: Wait) -> None:
        """Remember the wait claimed under the lease `token` (none: nothing to remember)."""
        if token is None:
            return
        with self._lock:
            self._claims[(thread, key, token)] = wait
            while len(self._claims) > self._size:
                self._claims.popitem(last=False)

    def take(self, thread: str, key: str, token: int | None) -> Wait | None:
        """The wait claimed under `token`, if this process claimed it; forgotten once taken."""
        if token is None:
            return None
        with self._lock:
            return self._claims.pop((thread, key, token), None)
