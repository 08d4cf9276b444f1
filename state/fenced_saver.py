"""LangGraph's Postgres checkpointers with every write fenced by the thread's lease.

`put` and `put_writes` run their statements in one transaction that first calls
`dealflow_fence(thread, token)` (see `state.leases`): a process that lost the
thread's lease cannot add a checkpoint, so the thread's history never forks.
A write that loses its connection (a terminated backend, a server restart) is
tried again on a fresh one a few times: LangGraph's writes are upserts, so a
repeat is harmless. Reads are LangGraph's own (a leased thread's latest checkpoint
serves the read after it too: `state.latest_reads`). The async twin is
`state.fenced_async_saver`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import psycopg
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.constants import START, TASKS
from psycopg import Cursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

from state.held_writes import HeldWrites
from state.latest_reads import LatestReads, latest_key
from state.leases import FENCE_SQL, Leases
from state.statements import Batch, Recorder, write_fenced
from state.transactions import DealOwnedElsewhere, refusal

T = TypeVar("T")
# The thread a write is for, set by put/put_writes for the _cursor they open.
_writing: ContextVar[str | None] = ContextVar("dealflow_writing_thread", default=None)
# Held task writes that the fenced transaction opened by _cursor saves first.
_carrying: ContextVar[tuple[Batch, ...]] = ContextVar("dealflow_carrying", default=())
# Set by _hold_checkpoint: the fenced write's statements go here instead of to the database.
_recording: ContextVar[list[Batch] | None] = ContextVar("dealflow_recording", default=None)
# Where LangGraph puts a run's durability in the config it hands the checkpointer.
DURABILITY_KEY = "__pregel_durability"


# Pauses before the repeats of a write whose connection was lost (about 4 s in all).
RECONNECT_PAUSES = (0.2, 0.5, 1.0, 2.0)


def thread_of(config: RunnableConfig) -> str:
    """The thread a config is for."""
    return str(config["configurable"]["thread_id"])


def leads_on(checkpoint: Checkpoint, metadata: CheckpointMetadata) -> bool:
    """Whether a run's checkpoint has a super-step after it in the same run.

    A run's input, or a step's checkpoint that triggers a node (LangGraph's
    `branch:to:NODE` channels, `Send`'s tasks): the run goes on, and the next
    step's first write will carry it. A step that ends the run triggers none.
    """
    if metadata.get("source") not in ("input", "loop"):
        return False
    return any(channel in (START, TASKS) or channel.startswith("branch:to:")
               for channel in checkpoint.get("updated_channels") or ())


_INSERT_NEW_CHECKPOINT = (
    "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
    " checkpoint, metadata) VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO NOTHING")


class FencedPostgresSaver(PostgresSaver):
    """`PostgresSaver` whose checkpoint writes fail with `LeaseLost` once the lease is gone.

    Under durability "sync" it saves a super-step's task writes with the step's
    checkpoint, in one transaction (`state.held_writes` says what that changes).
    `hold_writes`: "sync" (default), "always" (any durability) or "never".
    """

    def __init__(self, pool: Any, *, leases: Leases, hold_writes: str = "sync",
                 **kwargs: Any) -> None:
        """On `pool`, fencing with this process's `leases`."""
        super().__init__(pool, **kwargs)
        self.leases = leases
        # held writes ride on the pooled, fenced transaction of `_cursor`
        self.hold_writes = hold_writes if isinstance(pool, ConnectionPool) else "never"
        # a refused registry update stays held: the run's next checkpoint raises it
        self.held = HeldWrites(self._save_held,
                               keep=lambda exc: isinstance(exc, DealOwnedElsewhere))
        self.latest = LatestReads()

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Save a checkpoint, and the writes held for the thread, in one fenced transaction.

        A checkpoint the run goes on from (`leads_on`: its input, and every step
        but the last) is held like a task's writes, under the same rules: the
        next step's first write (an effect's claim, a fact, its checkpoint) saves
        it, before anything that step does is saved.
        """
        with self._writing_thread(config):
            if self._holds(config["configurable"]) and leads_on(checkpoint, metadata):
                return self._hold_checkpoint(config, checkpoint, metadata, new_versions)
            return self._put_now(config, checkpoint, metadata, new_versions)

    def _put_now(self, config: RunnableConfig, checkpoint: Checkpoint,
                 metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        """Save the checkpoint now, with what is held for the thread (fenced)."""
        thread = thread_of(config)
        with self.held.flushing(thread):
            carried = _carrying.set(tuple(self.held.take(thread, checkpoint["id"])))
            try:
                return self._fenced(config, lambda: super(FencedPostgresSaver, self).put(
                    config, checkpoint, metadata, new_versions))
            finally:
                _carrying.reset(carried)

    def _hold_checkpoint(self, config: RunnableConfig, checkpoint: Checkpoint,
                         metadata: CheckpointMetadata, new_versions: ChannelVersions
                         ) -> RunnableConfig:
        """Hold the checkpoint's statements for the thread's next fenced write."""
        thread, recorded = thread_of(config), list[Batch]()
        reset = _recording.set(recorded)
        try:
            next_config = self._fenced(config, lambda: super(FencedPostgresSaver, self).put(
                config, checkpoint, metadata, new_versions))
        finally:
            _recording.reset(reset)
        # a new id, inserted once: held checkpoints go out as one multi-row INSERT
        batches = [(_INSERT_NEW_CHECKPOINT if statement == self.UPSERT_CHECKPOINTS_SQL
                    else statement, rows) for statement, rows in recorded]
        self.held.hold_checkpoint(thread, checkpoint["id"], *batches)
        return next_config

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                   task_id: str, task_path: str = "") -> None:
        """Hold a task's writes for the step's checkpoint, or save them now (fenced)."""
        with self._writing_thread(config):
            self._put_writes(config, writes, task_id, task_path)

    @contextmanager
    def _writing_thread(self, config: RunnableConfig) -> Iterator[None]:
        """A write of the thread: its latest read is forgotten before and after."""
        thread = thread_of(config)
        self.latest.forget(thread)
        try:
            yield
        finally:
            self.latest.forget(thread)

    def _put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                    task_id: str, task_path: str) -> None:
        configurable = config["configurable"]
        thread, checkpoint_id = thread_of(config), str(configurable["checkpoint_id"])
        special = any(channel in WRITES_IDX_MAP for channel, _ in writes)
        if not special and self._holds(configurable):
            rows = self._dump_writes(thread, configurable["checkpoint_ns"], checkpoint_id,
                                     task_id, task_path, writes)
            if self.held.hold(thread, checkpoint_id, (self.INSERT_CHECKPOINT_WRITES_SQL, rows)):
                return
        with self.held.flushing(thread):
            carried = _carrying.set(tuple(self.held.take(thread)))
            try:
                self._fenced(config, lambda: super(FencedPostgresSaver, self).put_writes(
                    config, writes, task_id, task_path))
            finally:
                _carrying.reset(carried)

    def hold_rows(self, configurable: Mapping[str, Any], checkpoint_id: str,
                  *batches: Batch) -> bool:
        """Hold a task's bookkeeping rows (`state.step_rows`) for the step's checkpoint.

        False when this run's writes are not held: the caller writes them itself.
        """
        if not self._holds(configurable):
            return False
        return self.held.hold(str(configurable["thread_id"]), checkpoint_id, *batches)

    def take_rows(self, configurable: Mapping[str, Any]) -> list[Batch]:
        """Take what is held for the thread, for a fenced transaction of the thread to write.

        Waits for a save of the thread's rows already under way (the timer's), so the
        rows taken here land after those.
        """
        thread = str(configurable["thread_id"])
        with self.held.flushing(thread):
            return self.held.take(thread)

    def _holds(self, configurable: Mapping[str, Any]) -> bool:
        if self.hold_writes == "always":
            return True
        return self.hold_writes == "sync" and configurable.get(DURABILITY_KEY) == "sync"

    def _save_held(self, thread: str, batches: list[Batch]) -> None:
        """Save held writes on their own (a read, the timer, the process's exit)."""
        def write() -> None:
            with self._cursor(pipeline=True):
                pass  # _cursor writes what is carried, after the fence
        carried = _carrying.set(tuple(batches))
        try:
            self._fenced({"configurable": {"thread_id": thread}}, write)
        finally:
            _carrying.reset(carried)

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """LangGraph's read, after saving what is held for the thread.

        A leased thread's latest checkpoint serves the read after it too
        (`state.latest_reads`: the service's read, then its run's).
        """
        thread, key = thread_of(config), latest_key(config)
        self.held.save(thread)
        token = self.leases.token(thread)
        kept, found = self.latest.take(key, token)
        if kept:
            return found
        generation = self.latest.generation()
        try:
            found = super().get_tuple(config)
        except psycopg.OperationalError:  # a dropped connection: a read is safe to repeat
            found = super().get_tuple(config)
        if found is not None:
            self.held.seen(thread, found.config["configurable"]["checkpoint_id"])
        self.latest.store(key, token, generation, found)
        return found

    def list(self, config: RunnableConfig | None, **kwargs: Any) -> Iterator[CheckpointTuple]:
        """LangGraph's listing, after saving what is held (for the thread, or for all)."""
        if config is None or "thread_id" not in config.get("configurable", {}):
            self.held.save_all()
        else:
            self.held.save(thread_of(config))
        return super().list(config, **kwargs)

    def delete_thread(self, thread_id: str) -> None:
        """LangGraph's delete, after saving what is held (so nothing lands after it)."""
        self.held.save(str(thread_id))
        with self._writing_thread({"configurable": {"thread_id": str(thread_id)}}):
            super().delete_thread(thread_id)

    def prune(self, thread_ids: Sequence[str], **kwargs: Any) -> None:
        """LangGraph's prune, after saving what is held for those threads."""
        for thread in thread_ids:
            self.held.save(str(thread))
            self.latest.forget(str(thread))
        super().prune(thread_ids, **kwargs)
        for thread in thread_ids:
            self.latest.forget(str(thread))

    def _fenced(self, config: RunnableConfig, write: Callable[[], T]) -> T:
        reset = _writing.set(thread_of(config))
        try:
            for pause in (*RECONNECT_PAUSES, None):
                try:
                    return write()
                except psycopg.OperationalError:
                    if pause is None:
                        raise
                    time.sleep(pause)
            raise AssertionError("unreachable")
        except psycopg.Error as exc:
            raise refusal(exc) from None
        finally:
            _writing.reset(reset)

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[Cursor[DictRow]]:
        """LangGraph's cursor, on a pool connection of the caller's own.

        LangGraph guards every cursor with one process-wide lock, which a single
        shared connection needs but a pool does not: on a pool, concurrent deals
        read and write their checkpoints side by side. A fenced write (`put`,
        `put_writes`) is recorded, then sent with the fence and the held rows as one
        statement (`state.statements.write_fenced`), or held itself (`_hold_checkpoint`).
        """
        thread = _writing.get()
        if not isinstance(self.conn, ConnectionPool):  # one shared connection: LangGraph's lock
            if thread is None or not pipeline:
                with super()._cursor(pipeline=pipeline) as cur:
                    yield cur
                return
            with super()._cursor() as cur, cur.connection.transaction():
                cur.execute(FENCE_SQL, (thread, self.leases.token(thread)))
                yield cur
            return
        if thread is not None and pipeline:  # a fenced write: its statements, sent as one
            recorder = Recorder()
            yield cast(Cursor[DictRow], recorder)
            recording = _recording.get()
            if recording is not None:  # held, to be sent with a later write
                recording.extend(recorder.batches)
                return
            with self.conn.connection() as conn:
                write_fenced(conn, thread, self.leases.token(thread),
                              [*_carrying.get(), *recorder.batches])
            return
        with self.conn.connection() as conn:
            if not pipeline:
                with conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
            else:  # an unfenced write: a delete, a prune
                with conn.pipeline(), conn.cursor(binary=True, row_factory=dict_row) as cur:
                    yield cur
