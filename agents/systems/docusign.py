"""E-signature on DocuSign: envelopes over the eSignature REST API v2.1.

One envelope per send: the contract text as a document (base64, `txt`), one
signer (recipient `1`, a sign-here tab on the contract's signature line) and
envelope text custom fields naming the ledger's key (`dealflow_key`), the deal
and the contract. The access token goes in `Authorization: Bearer`.

**DocuSign has no idempotency key**, so the send is not repeated on a lost
answer (`ResponseLost`): the effect ledger asks `lookup(key)` first, which lists
the account's envelopes by the custom field `dealflow_key`. That list lags
behind writes, so a lookup that finds nothing asks again (about every second)
until `provider_lag_seconds` have passed since it began, then answers None and
the ledger sends again. Voiding and resending are repeatable: voiding an
envelope that is voided already is answered with the envelope as it is, and a
repeated resend costs at most one more reminder email. DocuSign keeps no
record of a resend, so `reminder(key)` answers None; a void is found by its
envelope, not by its key (`lookup` finds sends only; a void it cannot find is
simply made again).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.systems.base import Record
from agents.systems.http import ProviderClient, ProviderRefused
from agents.systems.providers import provider_client, required
from state.config import Settings
from state.database import Pool
from state.models import Contract, Envelope, SignerReminder

KEY_FIELD, DEAL_FIELD, CONTRACT_FIELD = "dealflow_key", "dealflow_deal_id", "dealflow_contract_id"
OPEN = ("sent", "delivered")  # sent, not yet signed, declined or voided
LOOKBACK = timedelta(days=365)  # how far back a lookup looks for a key's envelope
POLL_SECONDS = 1.0  # between the asks of a lookup that finds nothing yet
SIGNATURE_LINE = "Signed for the customer:"  # the sign-here tab's anchor in the contract


class DocuSignESign:
    """The `ESign` system on DocuSign (see the module's docstring)."""

    name, records_label, record_id = "esign", "envelopes", "envelope_id"

    def __init__(self, client: ProviderClient, account_id: str, *, lag_seconds: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """Sign through `client` (the REST base with the token) in account `account_id`."""
        self._client = client
        self._account = f"/v2.1/accounts/{account_id}"
        self._lag, self._clock, self._sleep = lag_seconds, clock, sleep

    @classmethod
    def from_settings(cls, settings: Settings, pool: Pool | None = None) -> DocuSignESign:
        """DocuSign at `DEALFLOW_DOCUSIGN_BASE_URI` (`.../restapi`) with its account and token.

        `pool`: the database its rate limit (if declared) is shared on.
        """
        base, account, token = required(settings, "docusign_base_uri", "docusign_account_id",
                                        "docusign_access_token")
        client = provider_client(settings, "esign", base, {
            "Authorization": f"Bearer {token}", "Accept": "application/json"},
            provider="docusign", pool=pool)
        return cls(client, account, lag_seconds=settings.provider_lag_seconds)

    def send_envelope(self, deal_id: str, contract: Contract, signer_name: str,
                      signer_email: str, *, key: str) -> Envelope:
        """Send the contract to the signer in one envelope (not repeated: see `lookup`)."""
        signer: dict[str, Any] = {"recipientId": "1", "routingOrder": "1", "name": signer_name,
                                  "email": signer_email}
        if SIGNATURE_LINE in contract.text:
            signer["tabs"] = {"signHereTabs": [{
                "anchorString": SIGNATURE_LINE, "anchorUnits": "pixels", "anchorXOffset": "0",
                "anchorYOffset": "20", "anchorIgnoreIfNotPresent": "true"}]}
        body = {
            "emailSubject": f"Please sign: {contract.contract_id} ({deal_id})"[:100],
            "status": "sent",
            "documents": [{"documentId": "1", "name": f"{contract.contract_id}.txt",
                           "fileExtension": "txt",
                           "documentBase64": base64.b64encode(contract.text.encode()).decode()}],
            "recipients": {"signers": [signer]},
            "customFields": {"textCustomFields": [
                {"name": name, "value": value, "show": "false", "required": "false"}
                for name, value in ((KEY_FIELD, key), (DEAL_FIELD, deal_id),
                                    (CONTRACT_FIELD, contract.contract_id))]},
        }
        summary = self._send("POST", "/envelopes", repeatable=False, json=body)
        return Envelope(envelope_id=summary["envelopeId"], contract_id=contract.contract_id,
                        signer_name=signer_name, signer_email=signer_email,
                        sent_at=_when(summary.get("statusDateTime")))

    def void_envelope(self, envelope_id: str, *, reason: str, key: str) -> Envelope:
        """Void a sent envelope; one voided already is returned as it is."""
        try:
            self._send("PUT", f"/envelopes/{envelope_id}", repeatable=True,
                       json={"status": "voided", "voidedReason": reason[:200]})
        except ProviderRefused as refused:
            found = self._envelope(envelope_id) if refused.status == 400 else None
            if found is None or found.get("status") != "voided":
                raise
            return _receipt(found)
        return _receipt(self._envelope(envelope_id))

    def open_envelopes(self, deal_id: str) -> list[str]:
        """Ids of the deal's envelopes that are sent and not voided (the list may lag)."""
        return [e["envelopeId"] for e in self._list(DEAL_FIELD, deal_id, status=",".join(OPEN))
                if e.get("status") in OPEN]

    def remind_signer(self, envelope_id: str, *, key: str) -> SignerReminder:
        """Have DocuSign send the envelope to its signer again (repeatable: see the module)."""
        answer = self._send("PUT", f"/envelopes/{envelope_id}/recipients", repeatable=True,
                            params={"resend_envelope": "true"},
                            json={"signers": [{"recipientId": "1"}]})
        for result in answer.get("recipientUpdateResults") or []:
            error = result.get("errorDetails") or {}
            if error.get("errorCode") not in (None, "", "SUCCESS"):
                raise ProviderRefused(self.name, f"PUT envelope {envelope_id} recipients: "
                                      f"{error.get('errorCode')} {error.get('message', '')}",
                                      400)
        return SignerReminder(reminder_id=f"resend:{key}"[:200], envelope_id=envelope_id,
                              sent_at=datetime.now(UTC))

    def reminder(self, key: str) -> SignerReminder | None:
        """None: DocuSign keeps no record of a resend (the ledger resends: one more email)."""
        return None

    def lookup(self, key: str) -> Envelope | None:
        """The envelope sent with `key`; asks again until the list's lag has passed."""
        until = self._clock() + self._lag
        while True:
            found = [e for e in self._list(KEY_FIELD, key) if _fields(e).get(KEY_FIELD) == key]
            if found:
                return _receipt(min(found, key=lambda e: str(e.get("createdDateTime", ""))))
            left = until - self._clock()
            if left <= 0:
                return None
            self._sleep(min(POLL_SECONDS, left))

    def records(self, deal_id: str) -> list[Record]:
        """The deal's envelopes at DocuSign, oldest first (the newest may lag)."""
        rows = []
        for envelope in sorted(self._list(DEAL_FIELD, deal_id),
                               key=lambda e: str(e.get("createdDateTime", ""))):
            signer = _signer(envelope)
            rows.append({"envelope_id": envelope["envelopeId"], "deal_id": deal_id,
                         "contract_id": _fields(envelope).get(CONTRACT_FIELD),
                         "status": envelope.get("status"), "signer_name": signer.get("name"),
                         "signer_email": signer.get("email"),
                         "sent_at": _when(envelope["sentDateTime"])
                         if envelope.get("sentDateTime") else None,
                         "voided_reason": envelope.get("voidedReason")})
        return rows

    def check(self) -> str:
        """One authenticated read: the account answers to the token."""
        account = self._send("GET", "", repeatable=True)
        return f"reachable, account {account.get('accountName') or '?'} accepted the token"

    def setup(self) -> list[str]:
        """Nothing to create at DocuSign (Connect is configured in its admin console)."""
        return []

    def _list(self, field: str, value: str, status: str | None = None) -> list[dict[str, Any]]:
        """The account's envelopes whose text custom field `field` is `value`."""
        since = (datetime.now(UTC) - LOOKBACK).strftime("%Y-%m-%dT%H:%M:%SZ")
        params = {"from_date": since, "custom_field": f"{field}={value}",
                  "include": "custom_fields,recipients"}
        if status:
            params["status"] = status
        answer = self._send("GET", "/envelopes", repeatable=True, params=params)
        return list(answer.get("envelopes") or [])  # an empty list has no `envelopes`

    def _envelope(self, envelope_id: str) -> dict[str, Any]:
        return self._send("GET", f"/envelopes/{envelope_id}", repeatable=True,
                          params={"include": "custom_fields,recipients"})

    def _send(self, method: str, path: str, *, repeatable: bool, **request: Any) -> Any:
        response = self._client.send(method, self._account + path, repeatable=repeatable,
                                     **request)
        return response.json() if response.content else {}


def _fields(envelope: dict[str, Any]) -> dict[str, str]:
    """The envelope's text custom fields, by name."""
    fields = (envelope.get("customFields") or {}).get("textCustomFields") or []
    return {f.get("name", ""): f.get("value", "") for f in fields}


def _signer(envelope: dict[str, Any]) -> dict[str, Any]:
    signers = (envelope.get("recipients") or {}).get("signers") or [{}]
    return dict(signers[0])


def _when(value: Any) -> datetime:
    """A DocuSign timestamp (`2024-05-02T01:44:12.3730000Z`), or now if it has none."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.now(UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _receipt(envelope: dict[str, Any]) -> Envelope:
    """The `Envelope` dealflow records, from DocuSign's (with custom fields and recipients)."""
    signer = _signer(envelope)
    return Envelope(envelope_id=envelope["envelopeId"],
                    contract_id=_fields(envelope).get(CONTRACT_FIELD, ""),
                    signer_name=signer.get("name", ""), signer_email=signer.get("email", ""),
                    sent_at=_when(envelope.get("sentDateTime") or envelope.get("createdDateTime")))
