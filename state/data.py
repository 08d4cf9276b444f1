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
from state.pending import PendingWrites
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
    pending: PendingWrites

    @classmethod
    def on(cls, pool: Pool, crash_hook: CrashHook = no_crash, *,
           pending: PendingWrites | None = None, leases: Leases | None = None) -> DataLayer:
        """All of them on one pool; durable writes go through `pending`.

        Pass the checkpointer's `pending` (`DealSaver.pending`): a step's unit of
        work is then written with its checkpoint, and every write is fenced by
        the leases the checkpointer fences with. Without it, a new one on
        `leases` (default: this process holds none, so writes to a thread
        another process holds fail), and each task writes its own work.
        """
        pending = pending or PendingWrites(pool, leases or Leases(pool))
        audit = AuditTrail(pool)
        outbox = Outbox(pool)
        return cls(audit=audit, facts=FactStore(pool, pending),
                   effects=EffectLedger(pending, audit, crash_hook),
                   spans=SpanStore(pool), registry=DealRegistry(pool), leases=pending.leases,
                   waits=WaitBook(pending, audit, outbox),
                   deadlines=DeadlineBook(pool, audit, outbox), outbox=outbox, pending=pending)
