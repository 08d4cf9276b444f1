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
from state.database import Pool
from state.leases import Leases
from state.step_rows import fenced_carrying, fenced_statement, hold_rows
from state.transactions import write_transaction

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
    return None


def fingerprint(effect: str, request: Mapping[str, Any]) -> str:
    """SHA-256 of the effect's name and its request, as canonical JSON."""
    canonical = json.dumps({"effect": effect, "request": request}, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def effect_key(deal_id: str, step: str, digest: str) -> str:
    """The idempotency key a system of record is given for one request."""
    return f"{deal_id}:{step}:{digest[:FINGERPRINT_CHARS]}"


_RECORD_RECEIPT = ("UPDATE dealflow_effects SET status = 'performed', receipt = %s,"
                   " performed_at = clock_timestamp()"
                   " WHERE idempotency_key = %s AND status = 'claimed'")


_CLAIM_COLUMNS = ("INSERT INTO dealflow_effects (idempotency_key, fingerprint, deal_id, step,"
                  " effect, status, request, thread_id, checkpoint_id, attempts,"
                  " claimant_token) SELECT %s, %s, %s, %s, %s, 'claimed', %s, %s, %s, 1, %s")
_CLAIM_FIRST = _CLAIM_COLUMNS + " ON CONFLICT DO NOTHING RETURNING attempts"
# the fence (`state.leases`) is evaluated first, in FROM: a lost lease inserts nothing
_CLAIM_FIRST_FENCED = (_CLAIM_COLUMNS + " FROM (SELECT dealflow_fence(%s, %s)) AS fence"
                       " ON CONFLICT DO NOTHING RETURNING attempts")
_CLAIMED_BEFORE = (
    "SELECT e.fingerprint, e.status, e.attempts, e.receipt, e.claimant_token,"
    " l.owner AS claimant FROM dealflow_effects e LEFT JOIN dealflow_leases l"
    " ON l.thread_id = e.thread_id AND l.token = e.claimant_token"
    " AND l.expires_at > clock_timestamp()"
    " WHERE e.idempotency_key = %s FOR UPDATE OF e")


class EffectLedger:
    """Reads and writes `dealflow_effects`."""

    def __init__(self, pool: Pool, audit: AuditTrail, leases: Leases,
                 crash_hook: CrashHook = no_crash) -> None:
        """Use `pool`; receipts are audited in `audit`; writes are fenced by `leases`."""
        self._pool = pool
        self._audit = audit
        self._leases = leases
        self._crash = crash_hook

    def perform(
        self,
        origin: Origin,
        effect: str,
        request: Mapping[str, Any],
        model: type[M],
        call: Callable[[str], M],
        lookup: Callable[[str], M | None] | None = None,
    ) -> tuple[M, str]:
        """Perform `effect` for `request` at most once; return its receipt and key.

        `call(key)` performs it with the idempotency key; `lookup(key)` asks the
        system whether an interrupted earlier call went through.
        """
        step = origin.step or origin.agent
        digest = fingerprint(effect, request)
        key = effect_key(origin.deal_id, step, digest)
        row = self._claim(origin, step, effect, key, digest, request)
        if row["status"] == "performed":
            self._audit.append(origin, "effect.reused", detail={"effect": effect, "key": key})
            return model.model_validate(row["receipt"]), key
        if row["attempts"] > 0:
            found = lookup(key) if lookup is not None else None
            if found is not None:
                return self._record(origin, effect, key, found, how="effect.reconciled",
                                    askable=True), key
            if lookup is None:
                raise EffectUncertain(
                    f"{effect} for deal {origin.deal_id} was attempted before without a "
                    "receipt, and the system cannot be asked whether it happened"
                )
        self._crash(step, "before_effect")
        receipt = call(key)
        self._crash(step, "after_effect")
        recorded = self._record(origin, effect, key, receipt, how="effect.performed",
                                askable=lookup is not None)
        self._crash(step, "after_receipt")
        return recorded, key

    def _claim(self, origin: Origin, step: str, effect: str, key: str, digest: str,
               request: Mapping[str, Any]) -> dict[str, Any]:
        """Claim the effect for this process's lease; return the row as it was before.

        A first claim is one statement, sent alone: the fence, and the row
        inserted as claimed by this lease with its first attempt counted. A key
        seen before is read (locked), checked and, if still unperformed, claimed
        again, in a fenced transaction of its own (`_claim_again`).
        """
        token = self._leases.token(origin.thread_id)
        payload = Jsonb(json.loads(json.dumps(request, default=str)))
        # what the task holds goes first, fenced by the claim's fence: one statement
        if origin.thread_id:
            first = fenced_statement(self._pool, _CLAIM_FIRST_FENCED, (
                key, digest, origin.deal_id, step, effect, payload, origin.thread_id,
                origin.checkpoint_id, token, origin.thread_id, token))
        else:
            first = fenced_statement(self._pool, _CLAIM_FIRST, (
                key, digest, origin.deal_id, step, effect, payload, origin.thread_id,
                origin.checkpoint_id, token))
        if first:
            return {"fingerprint": digest, "status": "claimed", "attempts": 0,
                    "receipt": None, "claimant_token": None, "claimant": None}
        return self._claim_again(origin, effect, key, digest, token)

    def _claim_again(self, origin: Origin, effect: str, key: str, digest: str,
                     token: int | None) -> dict[str, Any]:
        """Claim a key seen before: read it locked, check it and, if unperformed, claim it."""
        with write_transaction(self._pool) as conn:
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
                conn.execute("UPDATE dealflow_effects SET attempts = attempts + 1,"
                             " claimant_token = %s WHERE idempotency_key = %s", (token, key))
        return dict(row)

    def _record(self, origin: Origin, effect: str, key: str, receipt: M, *, how: str,
                askable: bool) -> M:
        """Record the receipt and its audit entry, fenced, in one transaction.

        When the system can be asked later whether a call went through
        (`askable`), inside a durable step the two rows ride with the step's
        checkpoint (`state.step_rows`): if the process dies before that, the
        task runs again, finds the effect claimed and attempted, and asks.
        """
        data = receipt.model_dump(mode="json")
        rows = [(_RECORD_RECEIPT, (Jsonb(data), key)),
                self._audit.row(origin, how, detail={"effect": effect, "key": key,
                                                     "receipt": data})]
        if askable and hold_rows(rows):
            return receipt
        with fenced_carrying(self._pool) as (conn, execute):
            execute(*self._leases.fence_statement(origin.thread_id))
            for statement, params in rows:
                conn.execute(statement, params)
        return receipt

    def effects(self, deal_id: str) -> list[dict[str, object]]:
        """The ledger rows of a deal, oldest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT idempotency_key, step, effect, status, attempts, request, receipt,"
                " thread_id, checkpoint_id, claimed_at, performed_at FROM dealflow_effects"
                " WHERE deal_id = %s ORDER BY claimed_at", (deal_id,)
            ).fetchall()
        return [dict(row) for row in rows]
