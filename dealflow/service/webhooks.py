"""E-signature webhooks: signature check, the envelope's deal, one row per event id.

The provider signs the raw body: `X-Dealflow-Signature: sha256=<hex HMAC-SHA256
of the body with DEALFLOW_WEBHOOK_SECRET>`, compared in constant time. The
envelope is found in the effect ledger (the receipt of `esign.send_envelope`),
so any e-sign system works. A delivery is recorded under its `event_id` once
its event has claimed the deal's wait (`dealflow.service.inbound`): a repeat
(even a concurrent one) finds the row and is acknowledged without a second job;
the same id with another envelope or event is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from state.database import Pool

SIGNATURE_HEADER = "X-Dealflow-Signature"


class EsignEvent(BaseModel):
    """A webhook body."""

    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    envelope_id: str = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
    event: Literal["signature.completed", "signature.declined"]


def signature_ok(secret: str | None, body: bytes, header: str | None) -> bool:
    """Whether `header` is the HMAC-SHA256 of `body` under `secret` (never without a secret)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.removeprefix("sha256=").encode(), expected.encode())


def sign(secret: str, body: bytes) -> str:
    """The header value a provider sends for `body` (tests, and the README's curl)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deal_of_envelope(pool: Pool, envelope_id: str) -> tuple[str, str] | None:
    """`(deal_id, thread_id)` of the deal the envelope was sent for, or None."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT deal_id, thread_id FROM dealflow_effects WHERE effect ="
            " 'esign.send_envelope' AND receipt->>'envelope_id' = %s"
            " ORDER BY performed_at DESC NULLS LAST LIMIT 1", (envelope_id,)).fetchone()
    return (row["deal_id"], row["thread_id"]) if row else None


def delivered(pool: Pool, event_id: str) -> EsignEvent | None:
    """The event recorded under `event_id`, if that id was delivered before."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT event_id, envelope_id, event FROM dealflow_webhook_events"
            " WHERE event_id = %s", (event_id,)).fetchone()
    return EsignEvent.model_validate(row) if row else None


def record_delivery(pool: Pool, event: EsignEvent, deal_id: str) -> bool:
    """Record the delivery; False if this event id was delivered before."""
    with pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO dealflow_webhook_events (event_id, envelope_id, event, deal_id)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            (event.event_id, event.envelope_id, event.event, deal_id)).fetchone()
    return row is not None


def note_job(pool: Pool, event_id: str, job_id: int | None) -> None:
    """Remember which job processes the delivery."""
    with pool.connection() as conn:
        conn.execute("UPDATE dealflow_webhook_events SET job_id = %s WHERE event_id = %s",
                     (job_id, event_id))
