"""Retention: delete the checkpoint history of deals that ended long ago.

LangGraph's Postgres tables keep every checkpoint of every thread forever. For a
deal the registry lists as ended (`ENDED`) at least `ended_before` ago, `prune`
deletes the rows of `checkpoints`, `checkpoint_blobs` and `checkpoint_writes`
but the thread's latest checkpoint (per namespace), the blobs it names and its
pending writes: `dealflow status`, `records` and a resume's refusal read the
same as before. The registry, the audit trail, the effect ledger, the facts,
the spans and the systems' records are not touched.

A thread is pruned in a batch of `BATCH_THREADS`, one transaction each, only
while this transaction holds
  - its registry row (`FOR UPDATE SKIP LOCKED`: two prunes never take one thread),
  - its lease row, expired (`state.leases`: a live holder's thread is skipped; the
    fence of every checkpoint write, and every lease takeover, wait for the row), and
  - a latest checkpoint that ends a run (a fork or an edit made since it ended has
    steps to run: the thread is skipped, so the checkpoints a live fork descends
    from stay).
With an archive directory, the thread's history is written there first
(`dealflow.archive`); a prune killed anywhere loses nothing, and a rerun
finishes. Each pruned thread gets a row in `dealflow_pruned_threads`. The
statements are in `dealflow/prune_sql.py`, in the order a batch sends them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar, get_args

import psycopg
from langgraph.constants import START, TASKS

from dealflow.archive import archive_path, sync_directory, write_archive
from dealflow.prune_sql import (
    CANDIDATES,
    COUNT_CANDIDATES,
    ENSURE_LEASES,
    HEADS,
    HISTORY,
    LOCK_LEASES,
    PLAN,
    PRUNE,
    PRUNED,
    RECORD,
)
from state.database import Pool, fetch_all
from state.durations import format_duration
from state.models import Outcome

ENDED: tuple[str, ...] = get_args(Outcome)  # every way a deal ends, `cancelled` included
BATCH_THREADS = 100
REASONS = {
    "busy": "another process holds its thread",
    "live": "its latest checkpoint has steps to run (a fork or an edit since it ended)",
}
_START = ("-infinity", "")  # the keyset cursor before the first deal


@dataclass(frozen=True)
class PrunedThread:
    """One thread pruned (or, in a dry run, that would be): the rows gone and its archive."""

    deal_id: str
    thread_id: str
    kept_checkpoint_id: str
    checkpoints: int
    blobs: int
    writes: int
    archive: str | None = None


@dataclass(frozen=True)
class Skipped:
    """An ended deal left as it is this time, and why (a key of `REASONS`)."""

    deal_id: str
    thread_id: str
    reason: str


@dataclass
class BatchedRun:
    """What one run over ended deals (a prune, a forget) did, or would do, batch by batch."""

    age: timedelta  # how long ago a deal must have ended to be taken
    dry_run: bool = False
    archive: Path | None = None
    candidates: int = 0  # deals ended long enough ago when it began (with `on_batch`)
    skipped: list[Skipped] = field(default_factory=list)
    batches: int = 0
    finished: bool = False  # False: stopped by its time budget, more may be left
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> dict[str, Any]:
        """What `--json` prints of any run: how it ran, and the deals skipped and why."""
        return {"dry_run": self.dry_run, "archive": str(self.archive) if self.archive else None,
                "finished": self.finished, "batches": self.batches,
                "skipped": [{**asdict(s), "why": REASONS[s.reason]} for s in self.skipped]}


@dataclass
class PruneRun(BatchedRun):
    """What one `prune` did (or would do)."""

    pruned: list[PrunedThread] = field(default_factory=list)

    def deleted(self) -> dict[str, int]:
        """Rows deleted (would be, in a dry run) from each of LangGraph's tables."""
        return {kind: sum(getattr(p, kind) for p in self.pruned)
                for kind in ("checkpoints", "blobs", "writes")}

    def to_json(self) -> dict[str, Any]:
        """The run as `dealflow prune --json` prints it."""
        return {
            "ended_before": format_duration(self.age), **self.summary(),
            "deleted": self.deleted(),
            "pruned": [{"deal_id": p.deal_id, "thread_id": p.thread_id,
                        "kept_checkpoint_id": p.kept_checkpoint_id, "archive": p.archive,
                        "deleted": {"checkpoints": p.checkpoints, "blobs": p.blobs,
                                    "writes": p.writes}} for p in self.pruned]}


def prune(pool: Pool, ended_before: timedelta, *, archive: Path | None = None,
          dry_run: bool = False, batch: int = BATCH_THREADS,
          budget_seconds: float | None = None,
          on_batch: Callable[[PruneRun], None] | None = None) -> PruneRun:
    """Prune the checkpoint history of deals that ended at least `ended_before` ago.

    `archive`: write each thread's history there first (created if missing).
    `dry_run`: count what would go, change nothing. `budget_seconds`: start no
    batch after this long (`finished` says whether every candidate was seen).
    `on_batch` is called after each batch (`candidates` is then counted first).
    """
    run = PruneRun(ended_before, dry_run, archive.resolve() if archive else None)
    return in_batches(pool, run, COUNT_CANDIDATES, _batch, batch=batch,
                      budget_seconds=budget_seconds, on_batch=on_batch)


R = TypeVar("R", bound=BatchedRun)
Cursor = tuple[Any, str]  # (updated_at, deal_id) of the last deal a batch saw


def in_batches(pool: Pool, run: R, count: str,
               one_batch: Callable[[psycopg.Connection[Any], R, dict[str, Any], Cursor],
                                   Cursor | None], *,
               batch: int, budget_seconds: float | None,
               on_batch: Callable[[R], None] | None) -> R:
    """Run `one_batch` (one transaction each) over the deals ended `run.age` ago, in order.

    The archive directory is created first; `count` (a statement) counts the
    candidates for the progress line when there is an `on_batch`. No batch
    starts after `budget_seconds`; `run.finished` says whether every deal was seen.
    """
    if run.archive is not None and not run.dry_run:
        run.archive.mkdir(parents=True, exist_ok=True)
    params = {"ended": list(ENDED), "age": run.age}
    if on_batch is not None:  # a count for the progress line (one pass over ended deals)
        run.candidates = int(fetch_all(pool, count, params)[0]["n"])
    cursor: Cursor | None = _START
    while cursor is not None:
        if budget_seconds is not None and time.monotonic() - run.started >= budget_seconds:
            return run
        with pool.connection() as conn:
            cursor = one_batch(conn, run, {**params, "limit": batch}, cursor)
        if cursor is not None:
            run.batches += 1
            if on_batch is not None:
                on_batch(run)
    run.finished = True
    return run


def claim_batch(conn: psycopg.Connection[Any], run: BatchedRun, candidates: str,
                params: dict[str, Any], cursor: Cursor) -> tuple[list[Any], dict[str, str]]:
    """A batch's registry rows (`candidates`, locked) and its ready threads' heads.

    In `conn`'s transaction. A thread is ready, with its latest checkpoint's id,
    when this transaction holds its lease row (expired) and its latest checkpoint
    ends a run; the others are added to `run.skipped` (busy, or live).
    """
    rows = conn.execute(candidates, {**params, "after_at": cursor[0],
                                     "after_id": cursor[1]}).fetchall()
    threads = [row["thread_id"] for row in rows]
    if not rows:
        return rows, {}
    conn.execute(ENSURE_LEASES, {"threads": threads, "host": socket.gethostname(),
                                 "pid": os.getpid()})
    free = {row["thread_id"] for row in conn.execute(LOCK_LEASES, {"threads": threads})}
    heads = {row["thread_id"]: row["checkpoint_id"]
             for row in conn.execute(HEADS, {"threads": sorted(free), "start": START,
                                             "tasks": TASKS}) if row["ended"]}
    run.skipped += [Skipped(row["deal_id"], row["thread_id"],
                            "busy" if row["thread_id"] not in free else "live")
                    for row in rows if row["thread_id"] not in heads]
    return rows, heads


def _batch(conn: psycopg.Connection[Any], run: PruneRun, params: dict[str, Any],
           cursor: Cursor) -> Cursor | None:
    """One batch in one transaction; the cursor after it, or None when none was left."""
    with conn.transaction(force_rollback=run.dry_run):
        rows, heads = claim_batch(conn, run, CANDIDATES, params, cursor)
        if not rows:
            return None
        deals = {row["thread_id"]: row["deal_id"] for row in rows}
        ready = [t for t in deals if t in heads]
        archives = _archive(conn, run.archive, ready) if run.archive and not run.dry_run \
            else {}
        counted = conn.execute(PLAN if run.dry_run else PRUNE, {"threads": ready}).fetchall()
        done = [PrunedThread(deals[r["thread_id"]], r["thread_id"], r["kept_checkpoint_id"],
                             int(r["checkpoints"]), int(r["blobs"]), int(r["writes"]),
                             archives.get(r["thread_id"]))
                for r in counted if r["checkpoints"] or r["blobs"] or r["writes"]]
        if done and not run.dry_run:
            conn.execute(RECORD, {name: [getattr(p, attr) for p in done] for name, attr in (
                ("threads", "thread_id"), ("deals", "deal_id"), ("kept", "kept_checkpoint_id"),
                ("checkpoints", "checkpoints"), ("blobs", "blobs"), ("writes", "writes"),
                ("archives", "archive"))})
    run.pruned += done
    last = rows[-1]
    return last["updated_at"], last["deal_id"]


def _archive(conn: psycopg.Connection[Any], directory: Path, threads: list[str]
             ) -> dict[str, str]:
    """Write the history of each thread that has some to lose; its archive's path by thread."""
    history: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(HISTORY, {"threads": threads}):
        history.setdefault(row["thread_id"], []).append(row)
    written = {}
    for thread, lines in history.items():
        if all(line["kept"] for line in lines):
            continue
        kept = max(line["checkpoint_id"] for line in lines if line["checkpoint_ns"] == ""
                   and line["kept"])
        path = archive_path(directory, thread, kept)
        write_archive(path, lines)
        written[thread] = str(path)
    if written:
        sync_directory(directory)
    return written


def pruned_threads(pool: Pool, thread_id: str) -> list[dict[str, Any]]:
    """Every prune of the thread, oldest first: when, the checkpoint kept, rows gone, archive."""
    return [{**row, "pruned_at": row["pruned_at"].isoformat(timespec="seconds")}
            for row in fetch_all(pool, PRUNED, (thread_id,))]


def run_retention(pool: Pool, retention: timedelta | None, budget_seconds: float) -> str:
    """The service's scheduled prune (`DEALFLOW_RETENTION`): one bounded run; what it did."""
    if retention is None:
        return "retention off (DEALFLOW_RETENTION is not set)"
    run = prune(pool, retention, budget_seconds=budget_seconds)
    deleted = run.deleted()
    more = "" if run.finished else "; more next time"
    return (f"{len(run.pruned)} deals pruned ({deleted['checkpoints']} checkpoints, "
            f"{deleted['blobs']} blobs, {deleted['writes']} writes), "
            f"{len(run.skipped)} skipped{more}")
