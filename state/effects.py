"""The effect ledger: each external effect of a deal happens once per request.

An effect is keyed by what it asks for: the deal, the step, the effect and a
fingerprint of the request (the terms the system is asked to act on). A step
that runs again with the same request (retry, resume, crash recovery) gets the
recorded receipt instead of a second call; a fork of the thread with other
terms has another fingerprint, so it performs its own effect. The same key
coming back with another request is a conflict, never a silent reuse.

`perform` claims the effect, calls the system, and records the receipt together
with its audit entry. Claim and receipt are fenced (`state.leases`): a process
that lost its thread's lease fails the claim and never calls the system, and a
claim held by another live lease is refused (`EffectBusy`). If an earlier
attempt crashed between the call and the receipt, the system's own `lookup` (by
idempotency key) decides whether the call happened; a system that cannot tell
makes the step fail into review rather than risk a duplicate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from psycopg.types.json import Jsonb
from pydantic import BaseModel

from state.audit import AuditTrail, Origin
from state.database import fetch_all
from state.pending import FLUSH, PendingWrites
from state.rows import Rows
from state.work import StepWork

M = TypeVar("M", bound=BaseModel)
CrashHook = Callable[[str, str], None]
FINGERPRINT_CHARS = 16  # of the SHA-256 in the idempotency key: 64 bits per deal and step


class EffectUncertain(RuntimeError):
    """An earlier attempt may have performed the effect, and the system cannot tell."""


class EffectBusy(RuntimeError):
    """Another process, whose lease is alive, has claimed the effect and may be performing it."""


class EffectConflict(RuntimeError):
    """An idempotency key came back with a request other than the one it was made for."""


def no_crash(step: str, phase: str) -> None:
    """The crash hook outside crash tests: does nothing."""


def fingerprint(effect: str, request: Mapping[str, Any]) -> str:
    """SHA-256 of the effect's name and its request, as canonical JSON."""
    canonical = json.dumps({"effect": effect, "request": request}, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def effect_key(deal_id: str, step: str, digest: str) -> str:
    """The idempotency key a system of record is given for one request."""
    return f"{deal_id}:{step}:{digest[:FINGERPRINT_CHARS]}"


# A first claim: the row, claimed by this lease with its first attempt counted, after the
# fence (`fenced`: a lost lease inserts nothing). `attempts` is NULL: the key was seen before.
_CLAIM_INSERT = """claimed AS (
  INSERT INTO dealflow_effects (idempotency_key, fingerprint, deal_id, step, effect, status,
                                request, thread_id, checkpoint_id, attempts, claimant_token)
  SELECT %(key)s, %(digest)s, %(deal)s, %(step)s, %(effect)s, 'claimed', %(request)s,
         %(thread)s, %(checkpoint)s, 1, %(token)s FROM fenced
  ON CONFLICT DO NOTHING RETURNING attempts)
SELECT (SELECT attempts FROM claimed) AS attempts FROM fenced"""
_CLAIM_FIRST = ("WITH fenced AS (SELECT dealflow_fence(%(thread)s, %(token)s)),\n"
                + _CLAIM_INSERT)
# ... after what the thread holds (the fence included), in the same statement
_CLAIM_FIRST_AFTER_HELD = (f"WITH fenced AS ({FLUSH}),\n" + _CLAIM_INSERT)
_CLAIM_AGAIN = ("UPDATE dealflow_effects SET attempts = attempts + 1, claimant_token = %s"
                " WHERE idempotency_key = %s")
_CLAIMED_BEFORE = (
    "SELECT e.fingerprint, e.status, e.attempts, e.receipt, e.claimant_token,"
    " l.owner AS claimant FROM dealflow_effects e LEFT JOIN dealflow_leases l"
    " ON l.thread_id = e.thread_id AND l.token = e.claimant_token"
    " AND l.expires_at > clock_timestamp()"
    " WHERE e.idempotency_key = %s FOR UPDATE OF e")


class EffectLedger:
    """Reads and writes `dealflow_effects`."""

    def __init__(self, pending: PendingWrites, audit: AuditTrail,
                 crash_hook: CrashHook = no_crash) -> None:
        """Write through `pending` (fenced by its leases); receipts are audited in `audit`."""
        self._pending = pending
        self._pool = pending.pool
        self._leases = pending.leases
        self._audit = audit
        self._crash = crash_hook

    def perform(self, origin: Origin, effect: str, request: Mapping[str, Any], model: type[M],
                call: Callable[[str], M], lookup: Callable[[str], M | None] | None = None,
                work: StepWork | None = None) -> tuple[M, str]:
        """Perform `effect` for `request` at most once; return its receipt and key.

        `call(key)` performs it with the idempotency key; `lookup(key)` asks the
        system whether an interrupted earlier call went through. `work`: the
        step's unit of work (the claim writes it first; the receipt may join it).
        """
        step = origin.step or origin.agent
        digest = fingerprint(effect, request)
        key = effect_key(origin.deal_id, step, digest)
        row = self._claim(origin, step, effect, key, digest, request, work)
        if row["status"] == "performed":
            self._audit.append(origin, "effect.reused", detail={"effect": effect, "key": key},
                               work=work)
            return model.model_validate(row["receipt"]), key
        if row["attempts"] > 0:
            found = lookup(key) if lookup is not None else None
            if found is not None:
                return self._record(origin, effect, key, found, how="effect.reconciled",
                                    work=work, hold=True), key
            if lookup is None:
                raise EffectUncertain(
                    f"{effect} for deal {origin.deal_id} was attempted before without a "
                    "receipt, and the system cannot be asked whether it happened")
        self._crash(step, "before_effect")
        receipt = call(key)
        self._crash(step, "after_effect")
        recorded = self._record(origin, effect, key, receipt, how="effect.performed",
                                work=work, hold=lookup is not None)
        self._crash(step, "after_receipt")
        return recorded, key

    def _claim(self, origin: Origin, step: str, effect: str, key: str, digest: str,
               request: Mapping[str, Any], work: StepWork | None) -> dict[str, Any]:
        """Claim the effect for this process's lease; return the row as it was before.

        A first claim is one statement (`_CLAIM_FIRST`), after what the thread
        holds; a key seen before is claimed again by `_claim_again`.
        """
        token = self._leases.token(origin.thread_id)
        payload = Jsonb(json.loads(json.dumps(request, default=str)))
        (first,) = self._pending.act(
            origin.thread_id, work.rows if work else None, _CLAIM_FIRST,
            _CLAIM_FIRST_AFTER_HELD, {
                "key": key, "digest": digest, "deal": origin.deal_id, "step": step,
                "effect": effect, "request": payload, "thread": origin.thread_id,
                "checkpoint": origin.checkpoint_id, "token": token})
        if first["attempts"] is not None:
            return {"fingerprint": digest, "status": "claimed", "attempts": 0,
                    "receipt": None, "claimant_token": None, "claimant": None}
        return self._claim_again(origin, effect, key, digest, token)

    def _claim_again(self, origin: Origin, effect: str, key: str, digest: str,
                     token: int | None) -> dict[str, Any]:
        """Claim a key seen before: read it locked, check it and, if unperformed, claim it."""
        with self._pending.transaction(origin.thread_id) as conn:
            self._leases.fence(conn, origin.thread_id)
            row = conn.execute(_CLAIMED_BEFORE, (key,)).fetchone()
            assert row is not None
            if row["fingerprint"] != digest:
                raise EffectConflict(
                    f"{effect} for deal {origin.deal_id}: idempotency key {key} was used "
                    "for another request; refusing to reuse its receipt")
            if row["status"] == "claimed":
                if row["claimant"] is not None and row["claimant_token"] != token:
                    raise EffectBusy(
                        f"{effect} for deal {origin.deal_id} is claimed by {row['claimant']},"
                        " whose lease is alive; refusing to perform it a second time")
                conn.execute(_CLAIM_AGAIN, (token, key))
        return dict(row)

    def _record(self, origin: Origin, effect: str, key: str, receipt: M, *, how: str,
                work: StepWork | None, hold: bool) -> M:
        """Record the receipt and its audit entry: into `work` if `hold`, else written now.

        Held only for a system that can be asked later whether a call went
        through (and only inside a step, with its `work`): if the process dies
        before the step's checkpoint, the task runs again, finds the effect
        claimed and attempted, and asks.
        """
        data = receipt.model_dump(mode="json")
        rows = work.rows if work is not None else Rows()
        rows.receipts.append((key, Jsonb(data)))
        rows.audit.append(self._audit.row(origin, how, detail={
            "effect": effect, "key": key, "receipt": data}))
        if work is None or not hold:  # after what the thread and the task hold: fenced, now
            self._pending.flush(origin.thread_id, rows)
        return receipt

    def effects(self, deal_id: str) -> list[dict[str, object]]:
        """The ledger rows of a deal, oldest first."""
        return [dict(row) for row in fetch_all(
            self._pool, "SELECT idempotency_key, step, effect, status, attempts, request, receipt,"
            " thread_id, checkpoint_id, claimed_at, performed_at FROM dealflow_effects"
            " WHERE deal_id = %s ORDER BY claimed_at", (deal_id,))]
