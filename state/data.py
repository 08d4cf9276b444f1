"""The shared data layer in one object: context store, audit trail, effect ledger."""

from __future__ import annotations

from dataclasses import dataclass

from state.audit import AuditTrail
from state.context_store import ContextStore
from state.database import Pool
from state.effects import CrashHook, EffectLedger, _no_crash


@dataclass(frozen=True)
class DataLayer:
    """What agents and the supervisor read, write and append to."""

    audit: AuditTrail
    context: ContextStore
    effects: EffectLedger

    @classmethod
    def on(cls, pool: Pool, crash_hook: CrashHook = _no_crash) -> DataLayer:
        """All three on one pool."""
        audit = AuditTrail(pool)
        return cls(audit=audit, context=ContextStore(pool, audit),
                   effects=EffectLedger(pool, audit, crash_hook))
