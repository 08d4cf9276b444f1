"""Archives of pruned checkpoint history: one gzip JSON Lines file per thread and prune.

`dealflow prune --archive DIR` writes a thread's whole history here before it
deletes any of it. Each line is one checkpoint, oldest first, as LangGraph's
tables held it, with what reading it needs, bytes in base64:

    {"thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id",
     "kept": true if it stayed in the database (the thread's latest),
     "checkpoint": {...}, "metadata": {...},
     "blobs": [{"channel", "version", "type", "blob"}],        # checkpoint_blobs it names
     "writes": [{"task_id", "task_path", "idx", "channel", "type", "blob"}]}  # its writes

A file is written under a temporary name, flushed to disk and renamed, so a
prune killed at any point leaves either no archive of a thread or a whole one
(the rerun writes it again, under the same name). `read_archive` reads one back.

A forgotten deal (`dealflow prune --forget-before`, `dealflow.prune_forget`) has
an archive of its own, `<thread>.<latest checkpoint>.forgotten.jsonl.gz`, written
the same way: a first line `{"forgotten": {"deal_id", "thread_id", "status",
"ended_at"}}`, then one line per row it had, `{"table": ..., "row": {...}}`, each
row as Postgres's `to_jsonb` spells it (bytes in hex). `read_forgotten`
reads one back, bytes decoded.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dealflow.prune_forget_sql import BYTEA_COLUMNS

SUFFIX = ".jsonl.gz"
FORGOTTEN_SUFFIX = ".forgotten.jsonl.gz"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class ArchivedBlob:
    """A channel's value at one version (`checkpoint_blobs`); `blob` None for an empty one."""

    channel: str
    version: str
    type: str
    blob: bytes | None


@dataclass(frozen=True)
class ArchivedWrite:
    """One pending write of a task (`checkpoint_writes`)."""

    task_id: str
    task_path: str
    idx: int
    channel: str
    type: str
    blob: bytes | None


@dataclass(frozen=True)
class ArchivedCheckpoint:
    """One line of an archive: a checkpoint with its blobs and its pending writes."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    kept: bool
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    blobs: list[ArchivedBlob]
    writes: list[ArchivedWrite]


def archive_path(directory: Path, thread_id: str, kept_checkpoint_id: str) -> Path:
    """Where the archive of a thread pruned down to `kept_checkpoint_id` goes (always the same)."""
    return directory / f"{_UNSAFE.sub('_', thread_id)}.{kept_checkpoint_id}{SUFFIX}"


def forgotten_path(directory: Path, thread_id: str, last_checkpoint_id: str) -> Path:
    """Where the archive of a forgotten deal goes: never a prune's archive's name."""
    return directory / f"{_UNSAFE.sub('_', thread_id)}.{last_checkpoint_id}{FORGOTTEN_SUFFIX}"


def write_archive(path: Path, lines: Iterable[dict[str, Any]]) -> int:
    """Write `lines` (JSON objects) to `path` whole, on disk when it returns; how many."""
    partial = path.with_name(f".{path.name}.partial")
    count = 0
    with open(partial, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as packed:
            for line in lines:
                packed.write(json.dumps(line, separators=(",", ":"), default=str).encode())
                packed.write(b"\n")
                count += 1
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(partial, path)
    return count


def sync_directory(directory: Path) -> None:
    """Make the renames in `directory` durable (its entry list flushed to disk)."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def read_archive(path: Path | str) -> list[ArchivedCheckpoint]:
    """Every checkpoint of an archive, oldest first, bytes decoded."""
    return list(iter_archive(path))


def iter_archive(path: Path | str) -> Iterator[ArchivedCheckpoint]:
    """The checkpoints of an archive one at a time (for a history too long to hold)."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                yield _checkpoint(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}: line {number} is not an archived checkpoint "
                                 f"({exc})") from None


def _checkpoint(row: dict[str, Any]) -> ArchivedCheckpoint:
    return ArchivedCheckpoint(
        thread_id=row["thread_id"], checkpoint_ns=row["checkpoint_ns"],
        checkpoint_id=row["checkpoint_id"], parent_checkpoint_id=row["parent_checkpoint_id"],
        kept=bool(row["kept"]), checkpoint=row["checkpoint"], metadata=row["metadata"],
        blobs=[ArchivedBlob(b["channel"], b["version"], b["type"], _bytes(b["blob"]))
               for b in row["blobs"]],
        writes=[ArchivedWrite(w["task_id"], w["task_path"], int(w["idx"]), w["channel"],
                              w["type"], _bytes(w["blob"])) for w in row["writes"]])


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


@dataclass(frozen=True)
class ForgottenArchive:
    """The archive of a forgotten deal: who it was, and its rows by table."""

    deal_id: str
    thread_id: str
    status: str
    ended_at: str
    tables: dict[str, list[dict[str, Any]]]


def read_forgotten(path: Path | str, bytea: dict[str, tuple[str, ...]] | None = None
                   ) -> ForgottenArchive:
    """A forgotten deal's archive; the `bytea` columns (table → names) decoded to bytes.

    `bytea` defaults to `dealflow.prune_forget_sql.BYTEA_COLUMNS` (LangGraph's blobs).
    """
    columns: dict[str, tuple[str, ...]] = dict(BYTEA_COLUMNS if bytea is None else bytea)
    tables: dict[str, list[dict[str, Any]]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        try:
            head = json.loads(next(lines))["forgotten"]
            for line in lines:
                item = json.loads(line)
                row = {key: bytes.fromhex(value[2:]) if key in columns.get(item["table"], ())
                       and isinstance(value, str) else value
                       for key, value in item["row"].items()}
                tables.setdefault(item["table"], []).append(row)
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            raise ValueError(f"{path}: not the archive of a forgotten deal ({exc})") from None
    return ForgottenArchive(head["deal_id"], head["thread_id"], head["status"],
                            head["ended_at"], tables)
