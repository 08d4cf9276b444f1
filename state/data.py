"""The shared data layer in one object: registry, facts, audit trail, effect ledger, spans."""

from __future__ import annotations

from dataclasses import dataclass

from state.audit import AuditTrail
from state.database import Pool
from state.effects import CrashHook, EffectLedger, no_crash
from state.fact_store import FactStore
from state.leases import Leases
from state.registry import DealRegistry
from state.spans import SpanStore


@dataclass(frozen=True)
class DataLayer:
    """What agents and the supervisor read, write and append to."""

    audit: AuditTrail
    facts: FactStore
    effects: EffectLedger
    spans: SpanStore
    registry: DealRegistry
    leases: Leases

    @classmethod
    def on(cls, pool: Pool, crash_hook: CrashHook = no_crash, *,
           leases: Leases | None = None) -> DataLayer:
        """All of them on one pool; fact and ledger writes are fenced by `leases`.

        Pass the same `Leases` the checkpointer fences with (default: this
        process holds none, so writes to a thread another process holds fail).
        """
        audit = AuditTrail(pool)
        leases = leases or Leases(pool)
        return cls(audit=audit, facts=FactStore(pool, audit, leases),
                   effects=EffectLedger(pool, audit, leases, crash_hook),
                   spans=SpanStore(pool), registry=DealRegistry(pool), leases=leases)
