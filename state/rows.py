"""The rows one flush writes, table by table: a step's unit of work and its checkpoint.

`Rows` is what a thread has not yet sent: checkpoint blobs, checkpoints, task
writes (LangGraph's three tables) and the step's own bookkeeping (audit
entries, spans, the registry's row of the deal, effect receipts). Each list
holds tuples in the column order of `FLUSH` (`state.pending`); `flush_params`
turns each list into one JSON array of objects, so the statement's text never
changes with the number of rows.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from psycopg.types.json import Json, Jsonb

Row = tuple[Any, ...]

# The columns of each list, in order: the names of `FLUSH`'s array parameters.
COLUMNS: dict[str, tuple[str, ...]] = {
    "blobs": ("thread_id", "checkpoint_ns", "channel", "version", "type", "blob"),
    "checkpoints": ("thread_id", "checkpoint_ns", "checkpoint_id", "parent_checkpoint_id",
                    "checkpoint", "metadata"),
    "writes": ("thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "task_path", "idx",
               "channel", "type", "blob"),
    "audit": ("deal_id", "thread_id", "step", "agent", "action", "key", "checkpoint_id",
              "actor", "reason", "detail", "dedupe_key"),
    "spans": ("deal_id", "thread_id", "node", "agent", "system", "task", "attempt",
              "started_at", "duration_ms", "status", "error", "llm_calls", "prompt_tokens",
              "completion_tokens"),
    "deals": ("deal_id", "thread_id", "client", "value", "currency", "input", "status"),
    "receipts": ("idempotency_key", "receipt"),
}
# Rows that one statement may not write twice (an upsert or an update): the last one
# of each key is kept, by the number of leading columns that make the key.
_KEYS = {"checkpoints": 3, "writes": 6, "deals": 1, "receipts": 1}


@dataclass
class Rows:
    """Rows not yet written, in the order they were made."""

    blobs: list[Row] = field(default_factory=list)
    checkpoints: list[Row] = field(default_factory=list)
    writes: list[Row] = field(default_factory=list)
    audit: list[Row] = field(default_factory=list)
    spans: list[Row] = field(default_factory=list)
    deals: list[Row] = field(default_factory=list)
    receipts: list[Row] = field(default_factory=list)

    def __bool__(self) -> bool:
        """Whether there is anything to write."""
        return any(getattr(self, f.name) for f in fields(self))

    def extend(self, later: Rows) -> None:
        """Add the rows of `later` after these."""
        for f in fields(self):
            getattr(self, f.name).extend(getattr(later, f.name))

    def take(self) -> Rows:
        """Move every row out into a new `Rows`; these are empty after."""
        taken = Rows()
        taken.extend(self)
        for f in fields(self):
            getattr(self, f.name).clear()
        return taken


def flush_params(rows: Rows, thread_id: str | None, token: int | None) -> dict[str, Any]:
    """`FLUSH`'s parameters: the fence's thread and token, the rows, the audit entries.

    `rows` holds one JSON array of objects per table; `audit` the entries, in order.
    """
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, columns in COLUMNS.items():
        found: list[Row] = getattr(rows, table)
        if table in _KEYS:
            found = _last_of_each(found, _KEYS[table])
        tables[table] = [dict(zip(columns, map(_plain, row), strict=True)) for row in found]
    return {"thread": thread_id, "token": token, "audit": Jsonb(tables.pop("audit")),
            "rows": Jsonb(tables)}


def _plain(value: Any) -> Any:
    """A row's value as JSON: bytes in base64, times in ISO 8601, numbers as text."""
    if isinstance(value, (Json, Jsonb)):  # a JSON value of its own
        return value.obj
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _last_of_each(rows: list[Row], key_width: int) -> list[Row]:
    """The last row of each key (its first `key_width` columns), in the order of those."""
    last: dict[Row, Row] = {}
    for row in rows:
        key = row[:key_width]
        last.pop(key, None)
        last[key] = row
    return list(last.values())
