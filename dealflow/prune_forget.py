"""Retention's second tier: forget deals that ended very long ago, whole.

`dealflow.prune` keeps what every deal did for ever, so the database grows by
the registry row, audit trail, effect ledger, facts and spans of each deal.
For a deal the registry lists as ended at least `forget_before` ago (`7y`),
`forget` writes every row dealflow and LangGraph hold about it (every table of
`prune_forget_sql.TABLES`) to the deal's archive, then deletes them all and
writes a tombstone (`dealflow_forgotten_deals`: the deal and thread ids, how and
when it ended, when it was forgotten, the archive), by which `dealflow status`
and `history` say it was forgotten and where its archive is. The sandbox
systems' tables stand for external systems of record and are not touched.

Batches as `dealflow.prune` takes them, one transaction each: the registry row
(`FOR UPDATE SKIP LOCKED`: two processes never take one deal), the expired lease
row, a latest checkpoint that ends a run. The archives are whole on disk
(fsynced, renamed, the directory fsynced) before the batch deletes anything; the
rows deleted must be the rows archived, deal by deal and table by table, or the
batch is rolled back. A forget killed anywhere loses nothing; a rerun finishes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from dealflow.archive import forgotten_path, sync_directory, write_archive
from dealflow.errors import DealflowError
from dealflow.prune import BatchedRun, Cursor, claim_batch, in_batches
from dealflow.prune_forget_sql import (
    CANDIDATES,
    COUNT_CANDIDATES,
    DELETE,
    FORGOTTEN,
    ROWS,
    TABLES,
    TOMBSTONE,
)
from state.config import ConfigError, Settings
from state.database import Pool, fetch_all
from state.durations import OFF, format_duration

BATCH_DEALS = 100
_START = ("-infinity", "")  # the keyset cursor before the first deal


class ForgetRaced(DealflowError):
    """Rows of a deal changed while it was being forgotten: its batch was rolled back."""

    exit_code = 1


@dataclass(frozen=True)
class ForgetSettings:
    """The scheduled forget: after how long (None: off), and where archives go (None: none)."""

    after: timedelta | None
    archive: Path | None


def forget_settings(settings: Settings) -> ForgetSettings:
    """`DEALFLOW_FORGET_AFTER` and `DEALFLOW_FORGET_ARCHIVE`, checked against the retention.

    ConfigError (one line) when the forget is set below `DEALFLOW_RETENTION`, or set
    without saying where its archives go (a directory, or `none`).
    """
    after, archive = settings.forget_after, settings.forget_archive
    if after is None:
        return ForgetSettings(None, None)
    if settings.retention is not None and after < settings.retention:
        raise ConfigError(f"DEALFLOW_FORGET_AFTER ({format_duration(after)}) must be at least "
                          f"DEALFLOW_RETENTION ({format_duration(settings.retention)})")
    if not archive:
        raise ConfigError("DEALFLOW_FORGET_AFTER needs DEALFLOW_FORGET_ARCHIVE: a directory "
                          "for the archives, or 'none' to forget without one")
    return ForgetSettings(after, None if archive.strip().lower() in OFF else Path(archive))


@dataclass(frozen=True)
class ForgottenDeal:
    """One deal forgotten (in a dry run: that would be): its rows by table, its archive."""

    deal_id: str
    thread_id: str
    status: str
    ended_at: str
    rows: dict[str, int]
    archive: str | None = None


@dataclass
class ForgetRun(BatchedRun):
    """What one forget did (or would do)."""

    forgotten: list[ForgottenDeal] = field(default_factory=list)

    def deleted(self) -> dict[str, int]:
        """Rows deleted (would be, in a dry run) from each table."""
        return {table: sum(f.rows.get(table, 0) for f in self.forgotten) for table, _ in TABLES}

    def to_json(self) -> dict[str, Any]:
        """The run as `dealflow prune --forget-before --json` prints it (under `forget`)."""
        return {"forget_before": format_duration(self.age), **self.summary(),
                "deleted": self.deleted(), "forgotten": [asdict(f) for f in self.forgotten]}


def forget(pool: Pool, forget_before: timedelta, *, archive: Path | None,
           dry_run: bool = False, batch: int = BATCH_DEALS, budget_seconds: float | None = None,
           on_batch: Callable[[ForgetRun], None] | None = None) -> ForgetRun:
    """Forget every deal that ended at least `forget_before` ago; what was done.

    `archive`: the directory of the deals' archives (created if missing); None
    forgets without one (the caller asked for it explicitly). `dry_run`,
    `budget_seconds` and `on_batch` as `dealflow.prune.prune` takes them.
    """
    run = ForgetRun(forget_before, dry_run, archive.resolve() if archive else None)
    return in_batches(pool, run, COUNT_CANDIDATES, _batch, batch=batch,
                      budget_seconds=budget_seconds, on_batch=on_batch)


def _batch(conn: psycopg.Connection[Any], run: ForgetRun, params: dict[str, Any],
           cursor: Cursor) -> Cursor | None:
    """One batch in one transaction; the cursor after it, or None when none was left."""
    with conn.transaction(force_rollback=run.dry_run):
        rows, heads = claim_batch(conn, run, CANDIDATES, params, cursor)
        if not rows:
            return None
        ready = {row["thread_id"]: row for row in rows if row["thread_id"] in heads}
        done = _forget(conn, run, ready, heads) if ready else []
    run.forgotten += done
    last = rows[-1]
    return last["updated_at"], last["deal_id"]


def _forget(conn: psycopg.Connection[Any], run: ForgetRun, ready: dict[str, dict[str, Any]],
            heads: dict[str, str]) -> list[ForgottenDeal]:
    """Archive, delete and tombstone the `ready` deals (thread → registry row) in this batch."""
    ids = {"deals": [r["deal_id"] for r in ready.values()], "threads": list(ready)}
    lines: dict[str, list[dict[str, Any]]] = {r["deal_id"]: [] for r in ready.values()}
    for row in conn.execute(ROWS, ids):
        lines[row["deal_id"]].append({"table": row["tbl"], "row": row["row"]})
    archived = {deal: Counter(line["table"] for line in found) for deal, found in lines.items()}
    paths: dict[str, str | None] = dict.fromkeys(lines)
    if run.archive is not None and not run.dry_run:
        for thread, registry in ready.items():
            path = forgotten_path(run.archive, thread, heads[thread])
            write_archive(path, [{"forgotten": _who(registry)}, *lines[registry["deal_id"]]])
            paths[registry["deal_id"]] = str(path)
        sync_directory(run.archive)
    done = [ForgottenDeal(**_who(r), rows=dict(archived[r["deal_id"]]),
                          archive=paths[r["deal_id"]]) for r in ready.values()]
    if run.dry_run:
        return done
    conn.execute(TOMBSTONE, {"deals": [d.deal_id for d in done],  # first: the audit
                             "threads": [d.thread_id for d in done],  # trail's trigger lets
                             "statuses": [d.status for d in done],  # a deal with one go
                             "ended": [d.ended_at for d in done],
                             "rows": [sum(d.rows.values()) for d in done],
                             "archives": [d.archive for d in done]})
    deleted: dict[str, Counter[str]] = {deal: Counter() for deal in lines}
    for row in conn.execute(DELETE, ids):
        deleted[row["deal_id"]][row["tbl"]] = int(row["n"])
    changed = sorted(deal for deal in lines if deleted[deal] != archived[deal])
    if changed:  # written meanwhile: the archive would miss rows the delete took
        raise ForgetRaced(f"rows of deal {changed[0]} changed while it was being forgotten; "
                          "its batch deleted nothing (run the same command again)")
    return done


def _who(registry: dict[str, Any]) -> dict[str, str]:
    """A deal as its archive's first line and its tombstone name it."""
    return {"deal_id": registry["deal_id"], "thread_id": registry["thread_id"],
            "status": registry["status"], "ended_at": registry["updated_at"].isoformat()}


def forgotten_deal(pool: Pool, ref: str) -> dict[str, Any] | None:
    """The tombstone of the deal (by deal id or thread id) if it was forgotten, else None."""
    found = fetch_all(pool, FORGOTTEN, {"ref": ref})
    return found[0] if found else None


def forgotten_note(pool: Pool, ref: str) -> str | None:
    """One line for a command on a forgotten deal: when, and where its archive is; or None."""
    found = forgotten_deal(pool, ref)
    if found is None:
        return None
    where = f"archive {found['archive']}" if found["archive"] else "not archived (--no-archive)"
    return (f"deal {found['deal_id']} (thread {found['thread_id']}) was forgotten on "
            f"{found['forgotten_at']:%Y-%m-%d}, {found['status']} on "
            f"{found['ended_at']:%Y-%m-%d}; {where}")


def run_forget(pool: Pool, chosen: ForgetSettings, budget_seconds: float) -> str:
    """The service's scheduled forget (`DEALFLOW_FORGET_AFTER`): one bounded run; what it did."""
    if chosen.after is None:
        return "forget off (DEALFLOW_FORGET_AFTER is not set)"
    run = forget(pool, chosen.after, archive=chosen.archive, budget_seconds=budget_seconds)
    more = "" if run.finished else "; more next time"
    rows = sum(run.deleted().values())
    return (f"{len(run.forgotten)} deals forgotten ({rows} rows), "
            f"{len(run.skipped)} skipped{more}")
