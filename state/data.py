"""The shared data layer in one object: registry, facts, audit, effects, spans, waits, outbox."""

from __future__ import annotations

from dataclasses import dataclass

from state.audit import AuditTrail
from state.database import Pool
from state.deadlines import DeadlineBook
from state.effects import CrashHook, EffectLedger, no_crash
from state.fact_store import FactStore
from state.leases import Leases
from state.outbox import Outbox
from state.registry import DealRegistry
from state.spans import SpanStore
from state.waits import WaitBook


@dataclass(frozen=True)
class DataLayer:
    """What agents and the supervisor read, write and append to."""

    audit: AuditTrail
    facts: FactStore
    effects: EffectLedger
    spans: SpanStore
    registry: DealRegistry
    leases: Leases
    waits: WaitBook
    deadlines: DeadlineBook
    outbox: Outbox

    @classmethod
    def on(cls, pool: Pool, crash_hook: CrashHook = no_crash, *,
           leases: Leases | None = None) -> DataLayer:
        """All of them on one pool; fact and ledger writes are fenced by `leases`.

        Pass the same `Leases` the checkpointer fences with (default: this
        process holds none, so writes to a thread another process holds fail).
        """
        audit = AuditTrail(pool)
        leases = leases or Leases(pool)
        outbox = Outbox(pool)
        return cls(audit=audit, facts=FactStore(pool, leases),
                   effects=EffectLedger(pool, audit, leases, crash_hook),
                   spans=SpanStore(pool), registry=DealRegistry(pool), leases=leases,
                   waits=WaitBook(pool, audit, outbox, leases),
                   deadlines=DeadlineBook(pool, audit, outbox), outbox=outbox)
