"""The shared fact store: versioned facts per deal, with conflict detection.

Keys are `<deal_id>.<name>` (e.g. `D-1.qualified`). Every write bumps the key's
version, appends to the change log and the audit trail, and notifies
subscribers, all in one transaction. Writes of one deal are serialized, so the
change log of a deal commits in order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from state.audit import Origin
from state.database import Pool, fetch_all
from state.pending import PendingWrites, after_held
from state.work import StepWork

NOTIFY_CHANNEL = "dealflow_context"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class FactKeyError(ValueError):
    """A key that is not `<deal_id>.<name>`."""


class VersionConflict(Exception):
    """A write expected a version that is no longer current; nothing was written."""

    def __init__(self, agent: str, key: str, expected: int, found: int) -> None:
        super().__init__(
            f"{agent} expected {key} at version {expected}, but it is at version {found}"
        )
        self.agent, self.key, self.expected, self.found = agent, key, expected, found


@dataclass(frozen=True)
class FactValue:
    """A key's current value with its version, writer and time."""

    key: str
    value: Any
    version: int
    writer: str
    updated_at: datetime


@dataclass(frozen=True)
class Change:
    """One entry of the change log (what subscribers receive)."""

    change_id: int
    key: str
    deal_id: str
    version: int
    value: Any
    writer: str
    written_at: datetime


def fact_key(deal_id: str, name: str) -> str:
    """The key of fact `name` of a deal."""
    return f"{deal_id}.{name}"


def split_key(key: str) -> tuple[str, str]:
    """`(deal_id, name)` of a key, or `FactKeyError`."""
    deal_id, dot, name = key.rpartition(".")
    if not dot or not deal_id or not _NAME.match(name) or "\x00" in deal_id:
        raise FactKeyError(f"context key must be <deal_id>.<name>, got {key!r:.100}")
    return deal_id, name


# The fence (if fenced), the deal's lock, the checks and the write: one statement
# (`dealflow_write_fact_v1`, state/functions.sql).
_CALL = """dealflow_write_fact_v1(p_fenced => %(fenced)s, p_thread => %(thread)s,
    p_token => %(token)s, p_key => %(key)s, p_deal => %(deal)s, p_value => %(value)s,
    p_writer => %(writer)s, p_expected => %(expected)s, p_only_own => %(only_own)s,
    p_step => %(step)s, p_agent => %(agent)s, p_checkpoint => %(checkpoint)s,
    p_channel => %(channel)s, p_before => %(audit)s)"""
_WRITE = f"SELECT * FROM {_CALL}"
_WRITE_AFTER_HELD = after_held(_CALL)  # what the thread holds first, in the same statement


class FactStore:
    """Reads and writes the shared facts of every deal."""

    def __init__(self, pool: Pool, pending: PendingWrites) -> None:
        """Read on `pool`; write through `pending`, fenced by its leases (and audited)."""
        self._pool = pool
        self._pending = pending

    def write(self, key: str, value: Any, agent: str, expected_version: int | None = None, *,
              origin: Origin | None = None, only_own: bool = False,
              work: StepWork | None = None) -> FactValue:
        """Write `value`; with `expected_version` (0 = must not exist) check it first.

        `only_own`: replace the key only if `agent` wrote it (or nobody did), read
        and checked in the write's own transaction; another writer's fact is a
        `VersionConflict`. Writing the value the key already holds, by the same
        writer, is a no-op (a step that runs again does not create a new version).
        """
        deal_id, _ = split_key(key)
        payload = json.loads(json.dumps(value, default=str))
        thread = origin.thread_id if origin is not None else None
        params = {
            "fenced": bool(thread), "thread": thread, "token": self._pending.leases.token(thread),
            "key": key, "deal": deal_id, "value": Jsonb(payload), "writer": agent,
            "expected": expected_version, "only_own": only_own,
            "step": origin.step if origin else None, "agent": origin.agent if origin else agent,
            "checkpoint": origin.checkpoint_id if origin else None, "channel": NOTIFY_CHANNEL}
        (row,) = self._pending.act(thread, work.rows if work else None, _WRITE,
                                   _WRITE_AFTER_HELD, params)
        if row["outcome"] == "conflict":
            raise VersionConflict(agent, key, expected_version or 0, row["version"])
        return FactValue(key, payload, row["version"], agent, row["updated_at"])

    def read(self, key: str) -> FactValue | None:
        """The key's current value, or None if it was never written."""
        return self.read_many([key]).get(key)

    def read_many(self, keys: list[str]) -> dict[str, FactValue]:
        """The current values of `keys` that were ever written, in one query."""
        for key in keys:
            split_key(key)
        rows = fetch_all(self._pool, "SELECT key, value, version, writer, updated_at"
                         " FROM dealflow_context WHERE key = ANY(%s)", (keys,))
        return {row["key"]: FactValue(**row) for row in rows}

    def deal(self, deal_id: str) -> dict[str, FactValue]:
        """Every current key of a deal."""
        rows = fetch_all(self._pool, "SELECT key, value, version, writer, updated_at"
                         " FROM dealflow_context WHERE deal_id = %s ORDER BY key", (deal_id,))
        return {row["key"]: FactValue(**row) for row in rows}

    def changes(self, *, deal_id: str | None = None, key: str | None = None,
                after: int = 0) -> list[Change]:
        """The change log after `after`, for a deal or a key, in commit order."""
        if deal_id is None and key is not None:
            deal_id, _ = split_key(key)
        if deal_id is None or "\x00" in deal_id:
            raise FactKeyError("changes() needs a deal_id or a key (without NUL)")
        with self._pool.connection() as conn:
            return fetch_changes(conn, deal_id=deal_id, key=key, after=after)


def fetch_changes(conn: Any, *, deal_id: str, key: str | None, after: int) -> list[Change]:
    """Changes of a deal (or one of its keys) with change_id > after, oldest first."""
    rows = conn.execute(
        "SELECT change_id, key, deal_id, version, value, writer, written_at"
        " FROM dealflow_context_changes WHERE deal_id = %s"
        " AND (%s::text IS NULL OR key = %s) AND change_id > %s ORDER BY change_id",
        (deal_id, key, key, after)).fetchall()
    return [Change(**row) for row in rows]
