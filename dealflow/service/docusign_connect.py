"""DocuSign Connect: envelope events, verified, taken the way every e-sign event is taken.

`POST /v1/webhooks/docusign` receives Connect's JSON messages (`event`,
`data.envelopeId`, `generatedDateTime`). Connect signs the raw body: each
`X-DocuSign-Signature-N` header is the base64 HMAC-SHA256 of the body under one
of the account's Connect keys; any header matching any key of
`DEALFLOW_DOCUSIGN_CONNECT_KEY` (several, comma-separated, for rotation) is
enough. Anything else is 401 and changes nothing; without a key every delivery
is refused.

`envelope-completed` and `envelope-declined` become `signature.completed` and
`signature.declined` and go through `dealflow.service.inbound.take_event` under
the event id `docusign:<envelopeId>:<event>`: a repeat, even a concurrent one,
is one event. Connect retries whatever is not answered 2xx, so what dealflow
deliberately does not act on is answered 200 with `ignored`: an event dealflow
does not wait for; an envelope some other sender sent (its custom fields, if
Connect includes them, lack `dealflow_key`); an envelope the deal voided (also
audited, once); an event whose wait something else ended. An envelope dealflow
sent but has not recorded yet (a signer faster than the step's checkpoint) is
404, and a deal not yet at its signature wait 409, so Connect delivers again later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import procrastinate
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

from agents.systems.docusign import KEY_FIELD
from dealflow.api import DealService
from dealflow.errors import Decided, InvalidInput, NotFound
from dealflow.service import webhooks
from dealflow.service.inbound import take_event
from state.audit import Origin
from state.database import Pool
from state.validation import first_error

PATH = "/v1/webhooks/docusign"
SIGNATURE_PREFIX = "x-docusign-signature-"
MAX_SIGNATURES = 100  # Connect sends at most one header per active key, 100 at most
EVENTS = {"envelope-completed": "signature.completed", "envelope-declined": "signature.declined"}
_PRINTABLE = r"^[\x21-\x7e]+$"


class ConnectData(BaseModel):
    """The message's `data`: the envelope, and its summary if Connect includes it."""

    model_config = ConfigDict(extra="ignore")
    envelope_id: str = Field(alias="envelopeId", min_length=1, max_length=100,
                             pattern=_PRINTABLE)
    envelope_summary: dict[str, Any] | None = Field(default=None, alias="envelopeSummary")


class ConnectMessage(BaseModel):
    """One Connect message (JSON, SIM format); unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")
    event: str = Field(min_length=1, max_length=100, pattern=_PRINTABLE)
    generated: str | None = Field(default=None, alias="generatedDateTime", max_length=100)
    data: ConnectData

    def foreign(self) -> bool:
        """Whether the envelope's custom fields are included and show another sender's."""
        fields = ((self.data.envelope_summary or {}).get("customFields") or {}).get(
            "textCustomFields")
        if not isinstance(fields, list):
            return False  # not included: it may be ours
        return not any(isinstance(f, dict) and f.get("name") == KEY_FIELD for f in fields)


def signed(keys: Sequence[str], body: bytes, headers: Mapping[str, str]) -> bool:
    """Whether any `X-DocuSign-Signature-N` is the HMAC of `body` under any of `keys`."""
    given = [value.strip().encode() for name, value in headers.items()
             if name.lower().startswith(SIGNATURE_PREFIX)
             and name[len(SIGNATURE_PREFIX):].isdigit()][:MAX_SIGNATURES]
    expected = [base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest())
                for key in keys if key]
    return any(hmac.compare_digest(mine, theirs) for mine in expected for theirs in given)


def voided_by_deal(pool: Pool, deal_id: str, envelope_id: str) -> bool:
    """Whether the deal set out to void the envelope (a superseded send, an expiry)."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT 1 FROM dealflow_effects WHERE deal_id = %s AND effect ="
            " 'esign.void_envelope' AND request->>'envelope_id' = %s LIMIT 1",
            (deal_id, envelope_id)).fetchone()
    return row is not None


def audit_ignored(service: DealService, deal_id: str, thread_id: str, message: ConnectMessage,
                  why: str) -> None:
    """One audit entry for an event of the deal's envelope that was acknowledged, not acted on."""
    envelope = message.data.envelope_id
    service.data.audit.append(
        Origin(deal_id, agent="esign", thread_id=thread_id), "webhook.ignored",
        actor="docusign-connect", reason=why,
        detail={"provider": "docusign", "event": message.event, "envelope_id": envelope,
                "generated": message.generated},
        dedupe_key=f"docusign:{deal_id}:{envelope}:{message.event}:ignored")


def docusign_routes(app: FastAPI, service: DealService, queue: procrastinate.App) -> None:
    """Mount `POST /v1/webhooks/docusign` on `app`."""
    keys = tuple(key.get_secret_value() for key in service.settings.docusign_connect_key)

    @app.post(PATH, tags=["webhooks"], responses={401: {}, 404: {}, 409: {}, 422: {}})
    async def docusign(request: Request) -> dict[str, Any]:
        """A DocuSign Connect message; 200 once taken (processed by a worker) or ignored.

        Headers `X-DocuSign-Signature-1..N`: base64 HMAC-SHA256 of the raw body.
        """
        body = await request.body()
        if not any(keys):
            raise HTTPException(401, "DocuSign Connect is not configured "
                                     "(DEALFLOW_DOCUSIGN_CONNECT_KEY): every delivery is refused")
        if not signed(keys, body, request.headers):
            raise HTTPException(401, "missing or wrong X-DocuSign-Signature-N (base64 "
                                     "HMAC-SHA256 of the body with a Connect key)")
        try:
            message = ConnectMessage.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidInput(first_error(exc, "message")) from None
        return await _take(service, queue, message)


async def _take(service: DealService, queue: procrastinate.App,
                message: ConnectMessage) -> dict[str, Any]:
    envelope = message.data.envelope_id
    answer: dict[str, Any] = {"event": message.event, "envelope_id": envelope}
    event = EVENTS.get(message.event)
    if event is None:
        return {**answer, "ignored": f"dealflow does not wait for {message.event}"}
    found = await anyio.to_thread.run_sync(webhooks.deal_of_envelope, service.pool, envelope)
    if found is None:
        if message.foreign():
            return {**answer, "ignored": "an envelope dealflow did not send"}
        raise NotFound(f"no envelope {envelope!r:.80} recorded (yet); Connect delivers again")
    deal_id, thread_id = found
    if await anyio.to_thread.run_sync(voided_by_deal, service.pool, deal_id, envelope):
        why = "the deal voided this envelope; nothing runs"
        await anyio.to_thread.run_sync(audit_ignored, service, deal_id, thread_id, message, why)
        return {**answer, "deal_id": deal_id, "ignored": why}
    try:
        taken = await take_event(service, queue, webhooks.EsignEvent(
            event_id=f"docusign:{envelope}:{message.event}", envelope_id=envelope, event=event))
    except Decided as exc:  # its wait ended otherwise (audited as refused): nothing to retry
        return {**answer, "deal_id": deal_id, "ignored": str(exc).splitlines()[0]}
    done = {**answer, "deal_id": taken.deal_id, "job_id": taken.job_id}
    if taken.duplicate:
        done["duplicate"] = True
    return {**done, "note": taken.note} if taken.note else done
