"""dealflow's checkpointer: LangGraph's `BaseCheckpointSaver` on LangGraph's own Postgres tables.

It reads and writes `checkpoints`, `checkpoint_blobs` and `checkpoint_writes` in
the layout of langgraph-checkpoint-postgres, so LangGraph Server, the SDK and
`PostgresSaver` read the same threads. Every statement is here as text but the
one that writes, `state.pending.FLUSH` (the fence, the step's checkpoint, its task
writes and its unit of work). What is held until when is `state.pending`'s rule;
`leads_on` adds one: a checkpoint the run goes on from waits for the next step's write.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.constants import START, TASKS
from psycopg.types.json import Jsonb

from state.pending import PendingWrites
from state.rows import Rows

_COLUMNS = """
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata,
    (SELECT array_agg(array[b.channel::bytea, b.type::bytea, b.blob])
     FROM jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
     JOIN checkpoint_blobs AS b ON b.thread_id = c.thread_id
      AND b.checkpoint_ns = c.checkpoint_ns AND b.channel = v.key AND b.version = v.value
    ) AS blobs,
    (SELECT array_agg(array[w.task_id::bytea, w.channel::bytea, w.type::bytea, w.blob,
                            convert_to(w.task_path, 'UTF8'), w.idx::text::bytea])
     FROM checkpoint_writes AS w WHERE w.thread_id = c.thread_id
      AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id
    ) AS writes
FROM checkpoints AS c
"""
SELECT_LATEST = _COLUMNS + """WHERE thread_id = %(thread)s AND checkpoint_ns = %(ns)s
ORDER BY checkpoint_id DESC LIMIT 1"""
SELECT_ONE = _COLUMNS + """WHERE thread_id = %(thread)s AND checkpoint_ns = %(ns)s
AND checkpoint_id = %(id)s"""
# Every filter optional; sent unprepared, so each listing is planned for its own values.
LIST = _COLUMNS + """WHERE (%(thread)s::text IS NULL OR thread_id = %(thread)s)
AND (%(ns)s::text IS NULL OR checkpoint_ns = %(ns)s)
AND (%(id)s::text IS NULL OR checkpoint_id = %(id)s)
AND (%(filter)s::jsonb IS NULL OR metadata @> %(filter)s)
AND (%(before)s::text IS NULL OR checkpoint_id < %(before)s)
ORDER BY checkpoint_id DESC LIMIT %(limit)s"""
DELETE_THREAD = """
WITH saved AS (DELETE FROM checkpoints WHERE thread_id = %(thread)s),
     blobs AS (DELETE FROM checkpoint_blobs WHERE thread_id = %(thread)s)
DELETE FROM checkpoint_writes WHERE thread_id = %(thread)s
"""
Found = list[dict[str, Any]]  # rows of `_COLUMNS` (a name: `DealSaver.list` hides `list`)


def leads_on(checkpoint: Checkpoint, metadata: CheckpointMetadata) -> bool:
    """Whether a run's checkpoint has a super-step after it in the same run.

    A run's input, or a step's checkpoint that triggers a node (LangGraph's
    `branch:to:NODE` channels, `Send`'s tasks). A step that ends the run
    triggers none.
    """
    if metadata.get("source") not in ("input", "loop"):
        return False
    return any(channel in (START, TASKS) or channel.startswith("branch:to:")
               for channel in checkpoint.get("updated_channels") or ())


class DealSaver(BaseCheckpointSaver[str]):
    """LangGraph's checkpointer interface, its writes held and flushed by `pending`.

    `hold_checkpoints`: a checkpoint the run goes on from (`leads_on`) is held
    too, and written with the next step's first write (`make bench` says what
    it saves; `state/README.md` what a crash then costs).
    """

    def __init__(self, pending: PendingWrites, *, serde: SerializerProtocol | None = None,
                 hold_checkpoints: bool = True) -> None:
        """Write through `pending` (its pool, its leases)."""
        super().__init__(serde=serde)
        self.pending = pending
        self.hold_checkpoints = hold_checkpoints

    # -- writes --------------------------------------------------------------
    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Save a checkpoint with what the thread holds (or hold it, if the run goes on)."""
        configurable = config["configurable"]
        thread, ns = str(configurable["thread_id"]), str(configurable.get("checkpoint_ns", ""))
        inline = dict(checkpoint["channel_values"])
        stored = {channel: inline.pop(channel) for channel in list(inline)
                  if not _inline(inline[channel])}
        rows = Rows(
            blobs=[(thread, ns, channel, str(version), *self.serde.dumps_typed(stored[channel]))
                   for channel, version in new_versions.items() if channel in stored],
            checkpoints=[(thread, ns, checkpoint["id"], configurable.get("checkpoint_id"),
                          Jsonb({**checkpoint, "channel_values": inline}),
                          Jsonb(get_serializable_checkpoint_metadata(config, metadata)))])
        if self.hold_checkpoints and ns == "" and leads_on(checkpoint, metadata):
            self.pending.hold_checkpoint(thread, checkpoint["id"], rows)
        else:
            self.pending.flush(thread, rows)
            if ns == "":
                self.pending.seen(thread, checkpoint["id"])
        return {"configurable": {"thread_id": thread, "checkpoint_ns": ns,
                                 "checkpoint_id": checkpoint["id"]}}

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                   task_id: str, task_path: str = "") -> None:
        """Hold a task's writes for the step's checkpoint.

        An error, an interrupt or a resume is written at once, with what the
        thread holds (as is a write for another checkpoint than the latest).
        """
        configurable = config["configurable"]
        thread, checkpoint_id = str(configurable["thread_id"]), str(configurable["checkpoint_id"])
        ns = str(configurable.get("checkpoint_ns", ""))
        rows = Rows(writes=[
            (thread, ns, checkpoint_id, task_id, task_path, WRITES_IDX_MAP.get(channel, idx),
             channel, *self.serde.dumps_typed(value))
            for idx, (channel, value) in enumerate(writes)])
        special = any(channel in WRITES_IDX_MAP for channel, _ in writes)
        if special or ns != "" or not self.pending.hold(thread, checkpoint_id, rows):
            self.pending.flush(thread, rows)

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints, blobs and writes (and forget what it holds)."""
        self.pending.discard(str(thread_id))
        with self.pending.pool.connection() as conn:
            conn.execute(DELETE_THREAD, {"thread": str(thread_id)})

    # -- reads ---------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The thread's checkpoint (its latest, or the one the config names)."""
        configurable = config["configurable"]
        thread, ns = str(configurable["thread_id"]), str(configurable.get("checkpoint_ns", ""))
        self.pending.flush(thread)
        checkpoint_id = get_checkpoint_id(config)
        query, params = ((SELECT_ONE, {"thread": thread, "ns": ns, "id": checkpoint_id})
                         if checkpoint_id else (SELECT_LATEST, {"thread": thread, "ns": ns}))
        rows = self._read(query, params)
        if not rows:
            return None
        if ns == "":
            self.pending.seen(thread, rows[0]["checkpoint_id"])
        return self._tuple(rows[0])

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None
             ) -> Iterator[CheckpointTuple]:
        """Checkpoints, newest first, of a thread (or of all), after writing what is held."""
        configurable = (config or {}).get("configurable", {})
        thread = configurable.get("thread_id")
        for holder in ([str(thread)] if thread is not None else self.pending.threads()):
            self.pending.flush(holder)
        rows = self._read(LIST, {
            "thread": str(thread) if thread is not None else None,
            "ns": configurable.get("checkpoint_ns"), "id": configurable.get("checkpoint_id"),
            "filter": Jsonb(filter) if filter else None,
            "before": get_checkpoint_id(before) if before else None, "limit": limit},
            prepare=False)
        for row in rows:
            yield self._tuple(row)

    def _read(self, query: str, params: dict[str, Any], *,
              prepare: bool | None = None) -> Found:
        """Run a read, once more on a fresh connection if the first one was dropped."""
        for attempt in (1, 2):
            try:
                with self.pending.pool.connection() as conn:
                    return conn.execute(query, params, binary=True, prepare=prepare).fetchall()
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _tuple(self, row: dict[str, Any]) -> CheckpointTuple:
        """A row of `_COLUMNS` as LangGraph's `CheckpointTuple`."""
        ids = {"thread_id": row["thread_id"], "checkpoint_ns": row["checkpoint_ns"]}
        values = {channel.decode(): self.serde.loads_typed((kind.decode(), blob))
                  for channel, kind, blob in row["blobs"] or [] if kind.decode() != "empty"}
        checkpoint = row["checkpoint"]
        writes = sorted(row["writes"] or [], key=lambda w: writes_sort_key(
            w[4].decode(), w[0].decode(), int(w[5])))
        parent = row["parent_checkpoint_id"]
        return CheckpointTuple(
            {"configurable": {**ids, "checkpoint_id": row["checkpoint_id"]}},
            cast(Checkpoint, {**checkpoint, "channel_values": {
                **(checkpoint.get("channel_values") or {}), **values}}),
            row["metadata"],
            {"configurable": {**ids, "checkpoint_id": parent}} if parent else None,
            [(w[0].decode(), w[1].decode(), self.serde.loads_typed((w[2].decode(), w[3])))
             for w in writes])

    def get_next_version(self, current: str | None, channel: None) -> str:
        """A version after `current`, in langgraph-checkpoint-postgres's format."""
        number = 0 if current is None else int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # -- the async twins: the same methods, in a worker thread ---------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """`get_tuple`, off the event loop."""
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None
                    ) -> AsyncIterator[CheckpointTuple]:
        """`list`, off the event loop."""
        found = await asyncio.to_thread(lambda: [*self.list(
            config, filter=filter, before=before, limit=limit)])
        for item in found:
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions
                   ) -> RunnableConfig:
        """`put`, off the event loop."""
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        """`put_writes`, off the event loop."""
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """`delete_thread`, off the event loop."""
        await asyncio.to_thread(self.delete_thread, thread_id)


def _inline(value: Any) -> bool:
    """Whether a channel's value is stored in the checkpoint itself, as LangGraph's saver does."""
    return value is None or isinstance(value, (str, int, float, bool))

