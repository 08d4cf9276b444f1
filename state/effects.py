"""The effect ledger: each external effect of a deal's step happens once.

`perform` claims the effect in Postgres, calls the system, and records the
receipt together with its audit entry. A step that runs again (retry, resume,
crash recovery) gets the recorded receipt instead of a second call. If an
earlier attempt crashed between the call and the receipt, the system's own
`lookup` (by idempotency key) decides whether the call happened; a system that
cannot tell makes the step fail into review rather than risk a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from state.audit import AuditTrail, Origin
from state.database import Pool

M = TypeVar("M", bound=BaseModel)
CrashHook = Callable[[str, str], None]


class EffectUncertain(RuntimeError):
    """An earlier attempt may have performed the effect, and the system cannot tell."""


def _no_crash(step: str, phase: str) -> None:
    return None


class EffectLedger:
    """Reads and writes `dealflow_effects`."""

    def __init__(self, pool: Pool, audit: AuditTrail, crash_hook: CrashHook = _no_crash) -> None:
        """Use `pool`; receipts are audited in `audit`; `crash_hook` is for crash tests."""
        self._pool = pool
        self._audit = audit
        self._crash = crash_hook

    def perform(
        self,
        origin: Origin,
        effect: str,
        model: type[M],
        call: Callable[[], M],
        lookup: Callable[[], M | None] | None = None,
    ) -> M:
        """Perform `effect` of `origin.step` at most once and return its receipt."""
        step = origin.step or origin.agent
        ident = (origin.deal_id, step, effect)
        with self._pool.connection() as conn:
            conn.execute(
                "INSERT INTO dealflow_effects (deal_id, step, effect, status)"
                " VALUES (%s, %s, %s, 'claimed') ON CONFLICT DO NOTHING", ident)
            row = conn.execute(
                "SELECT status, attempts, receipt FROM dealflow_effects"
                " WHERE deal_id = %s AND step = %s AND effect = %s", ident).fetchone()
        assert row is not None
        if row["status"] == "performed":
            self._audit.append(origin, "effect.reused", detail={"effect": effect})
            return model.model_validate(row["receipt"])
        if row["attempts"] > 0:
            found = lookup() if lookup is not None else None
            if found is not None:
                return self._record(origin, effect, found, how="effect.reconciled")
            if lookup is None:
                raise EffectUncertain(
                    f"{effect} for deal {origin.deal_id} was attempted before without a "
                    "receipt, and the system cannot be asked whether it happened"
                )
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE dealflow_effects SET attempts = attempts + 1"
                " WHERE deal_id = %s AND step = %s AND effect = %s", ident)
        self._crash(step, "before_effect")
        receipt = call()
        self._crash(step, "after_effect")
        recorded = self._record(origin, effect, receipt, how="effect.performed")
        self._crash(step, "after_receipt")
        return recorded

    def _record(self, origin: Origin, effect: str, receipt: M, *, how: str) -> M:
        data = receipt.model_dump(mode="json")
        step = origin.step or origin.agent
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "UPDATE dealflow_effects SET status = 'performed', receipt = %s,"
                " performed_at = clock_timestamp()"
                " WHERE deal_id = %s AND step = %s AND effect = %s AND status = 'claimed'",
                (Jsonb(data), origin.deal_id, step, effect))
            self._audit.append(origin, how, detail={"effect": effect, "receipt": data},
                               conn=conn)
        return receipt

    def effects(self, deal_id: str) -> list[dict[str, object]]:
        """The ledger rows of a deal."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT step, effect, status, attempts, receipt, claimed_at, performed_at"
                " FROM dealflow_effects WHERE deal_id = %s ORDER BY claimed_at", (deal_id,)
            ).fetchall()
        return [dict(row) for row in rows]
