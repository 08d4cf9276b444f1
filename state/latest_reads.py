"""A thread's latest checkpoint, read once more without a query while its lease is held.

The service reads a thread (to check what it waits for), then runs it, and
LangGraph's run begins by reading the same checkpoint again. While this process
holds the thread's lease no other process can write the thread, so the second
read may take what the first one read: one query and one deserialization fewer
per run. `FencedPostgresSaver` keeps one `LatestReads`.

What keeps it right:
- an entry serves one read (it is taken), under the same lease token it was read
  under (a lease released and taken again may have let another process write);
- every write of this process to the thread forgets the thread's entry, before it
  starts and after it ends, and a read that a write overlapped stores nothing
  (the write generation it began with has moved on);
- the entry is a copy: LangGraph applies pending writes to a checkpoint it reads.
"""

from __future__ import annotations

import threading

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, copy_checkpoint

Key = tuple[str, str]  # (thread_id, checkpoint_ns)
MAX_ENTRIES = 256


def latest_key(config: RunnableConfig) -> Key | None:
    """The key of a read of a thread's latest checkpoint; None for one of a given id."""
    configurable = config["configurable"]
    if configurable.get("checkpoint_id"):
        return None
    return str(configurable["thread_id"]), str(configurable.get("checkpoint_ns", ""))


def copied(found: CheckpointTuple | None) -> CheckpointTuple | None:
    """A copy of a read that its reader may change without changing the original."""
    if found is None:
        return None
    return found._replace(checkpoint=copy_checkpoint(found.checkpoint),
                          metadata=found.metadata.copy(),
                          pending_writes=list(found.pending_writes or []))


class LatestReads:
    """The last read of each leased thread's latest checkpoint, for the read after it."""

    def __init__(self) -> None:
        """Empty."""
        self._lock = threading.Lock()
        self._entries: dict[Key, tuple[int, CheckpointTuple | None]] = {}
        self._writes = 0  # every write of any thread moves it: see `store`

    def generation(self) -> int:
        """Taken before a read; `store` keeps the read only if no write began since."""
        with self._lock:
            return self._writes

    def take(self, key: Key | None, token: int | None) -> tuple[bool, CheckpointTuple | None]:
        """(True, the read) if one under lease `token` is kept for `key`; it is used up."""
        if key is None or token is None:
            return False, None
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None or entry[0] != token:
            return False, None
        return True, entry[1]

    def store(self, key: Key | None, token: int | None, generation: int,
              found: CheckpointTuple | None) -> None:
        """Keep a copy of `found`, read under lease `token`, unless a write overlapped it."""
        if key is None or token is None:
            return
        kept = copied(found)
        with self._lock:
            if self._writes == generation:
                if len(self._entries) >= MAX_ENTRIES:  # reads no run followed
                    self._entries.clear()
                self._entries[key] = (token, kept)

    def forget(self, thread_id: str) -> None:
        """A write of the thread begins or ends: its reads must be made again."""
        with self._lock:
            self._writes += 1
            for key in [k for k in self._entries if k[0] == thread_id]:
                del self._entries[key]
