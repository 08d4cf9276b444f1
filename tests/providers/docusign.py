"""A local DocuSign: the eSignature REST API v2.1 with its rules, and Connect's messages.

State: envelopes with their text custom fields, signers and status (`sent`,
then `voided`, `completed` or `declined`), and the resends. The rules a
connector can get wrong:
- every request needs `Authorization: Bearer <token>` (401 otherwise) and must
  fit the vendor's OpenAPI document (`tests/providers/openapi/docusign.json`):
  a misfit is answered 400 and kept in `violations`;
- the envelope list lags: an envelope is listed only `lag` seconds after it was
  created; it needs `from_date` (400 without), gives custom fields and
  recipients only with `include=custom_fields` / `recipients`, filters by
  `custom_field=name=value` and `status`, and leaves `envelopes` out when empty;
- only a sent envelope can be voided (with a reason) or resent; otherwise 400.
`connect_message` and `connect_headers` build what Connect posts to a listener.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.providers.server import Answer, ProviderServer, Request
from tests.providers.swagger import OpenAPIDocument

ACCOUNT = "/restapi/v2.1/accounts/(?P<account>[^/]+)"
ENVELOPE = ACCOUNT + "/envelopes/(?P<envelope>[^/]+)"
OPEN = ("sent", "delivered")


def stamp(at: datetime | None = None) -> str:
    """A DocuSign timestamp: seven fractional digits and `Z`."""
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _error(code: str, message: str) -> Answer:
    return Answer(400, {"errorCode": code, "message": message})


class DocuSignServer(ProviderServer):
    """DocuSign's eSignature API on a local port (see the module's docstring)."""

    openapi = OpenAPIDocument(Path(__file__).with_name("openapi") / "docusign.json")

    def __init__(self, account_id: str = "acct-1", token: str = "ds-token",
                 lag: float = 0.0) -> None:
        """An account `account_id` that accepts `token`; the list lags `lag` seconds."""
        super().__init__("docusign")
        self.account_id, self.token, self.lag = account_id, token, lag
        self.envelopes: dict[str, dict[str, Any]] = {}
        self.created: dict[str, float] = {}  # envelope id → monotonic time of creation
        self.resends: list[str] = []
        self.route("GET", ACCOUNT, self._account)
        self.route("POST", ACCOUNT + "/envelopes", self._create)
        self.route("GET", ACCOUNT + "/envelopes", self._list)
        self.route("GET", ENVELOPE, self._get)
        self.route("PUT", ENVELOPE, self._update)
        self.route("PUT", ENVELOPE + "/recipients", self._recipients)

    def authorized(self, request: Request) -> bool:
        """The account's bearer token."""
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def misfit(self, problem: str) -> Answer:
        """DocuSign's 400 for a request its OpenAPI document does not allow."""
        return _error("INVALID_REQUEST_BODY", problem)

    def sent(self, deal_id: str | None = None) -> list[dict[str, Any]]:
        """The envelopes created (of one deal, by its custom field), oldest first."""
        with self.lock:
            return [e for e in self.envelopes.values()
                    if deal_id is None or _fields(e).get("dealflow_deal_id") == deal_id]

    def finish(self, envelope_id: str, status: str = "completed") -> None:
        """The signer signed (`completed`) or declined the envelope."""
        with self.lock:
            envelope = self.envelopes[envelope_id]
            envelope.update(status=status, statusChangedDateTime=stamp(),
                            **{f"{status}DateTime": stamp()})

    def _ours(self, match: re.Match[str]) -> Answer | None:
        if match["account"] != self.account_id:
            return _error("USER_LACKS_MEMBERSHIP", "The UserID does not have a valid membership "
                          "in this Account.")
        return None

    def _account(self, request: Request, match: re.Match[str]) -> Answer:
        return self._ours(match) or Answer(200, {"accountIdGuid": self.account_id,
                                                 "accountName": "dealflow tests"})

    def _create(self, request: Request, match: re.Match[str]) -> Answer:
        refused = self._ours(match)
        if refused:
            return refused
        body = request.json
        signers = (body.get("recipients") or {}).get("signers") or []
        documents = body.get("documents") or []
        if body.get("status") != "sent" or not signers or not documents:
            return _error("INVALID_REQUEST_BODY", "an envelope to send needs status 'sent', "
                          "a document and a signer")
        for document in documents:
            if not document.get("fileExtension") or not document.get("documentBase64"):
                return _error("INVALID_REQUEST_BODY", "a document needs its bytes and extension")
            base64.b64decode(document["documentBase64"], validate=True)
        if any(not s.get("email") or not s.get("name") or not s.get("recipientId")
               for s in signers):
            return _error("INVALID_EMAIL_ADDRESS_FOR_RECIPIENT", "a signer needs name, email "
                          "and recipientId")
        envelope_id, now = str(uuid.uuid4()), stamp()
        fields = [{**f, "fieldId": str(n + 1)} for n, f in
                  enumerate((body.get("customFields") or {}).get("textCustomFields") or [])]
        self.envelopes[envelope_id] = {
            "envelopeId": envelope_id, "status": "sent", "emailSubject": body.get("emailSubject",
                                                                                 ""),
            "createdDateTime": now, "sentDateTime": now, "statusChangedDateTime": now,
            "customFields": {"textCustomFields": fields},
            "recipients": {"signers": [{**s, "status": "sent"} for s in signers]}}
        self.created[envelope_id] = time.monotonic()
        return Answer(201, {"envelopeId": envelope_id, "status": "sent", "statusDateTime": now,
                            "uri": f"/envelopes/{envelope_id}"})

    def _list(self, request: Request, match: re.Match[str]) -> Answer:
        refused = self._ours(match)
        if refused:
            return refused
        query = request.query
        if "from_date" not in query and "envelope_ids" not in query:
            return _error("INVALID_REQUEST_PARAMETER", "The request contained at least one "
                          "invalid parameter. 'from_date' must be set.")
        since = datetime.fromisoformat(query.get("from_date") or "2000-01-01T00:00:00Z")
        name, _, value = query.get("custom_field", "").partition("=")
        statuses = [s for s in query.get("status", "").split(",") if s and s != "any"]
        include = query.get("include", "").replace(" ", "").split(",")
        now = time.monotonic()
        found = [self._shown(e, include) for e in self.envelopes.values()
                 if now - self.created[e["envelopeId"]] >= self.lag
                 and datetime.fromisoformat(e["statusChangedDateTime"]) >= since
                 and (not name or _fields(e).get(name) == value)
                 and (not statuses or e["status"] in statuses)]
        page = {"resultSetSize": str(len(found)), "totalSetSize": str(len(found)),
                "startPosition": "0", "endPosition": str(len(found) - 1)}
        return Answer(200, {**page, "envelopes": found} if found else page)

    def _get(self, request: Request, match: re.Match[str]) -> Answer:
        envelope = self.envelopes.get(match["envelope"])
        if self._ours(match) or envelope is None:
            return self._ours(match) or _error("ENVELOPE_DOES_NOT_EXIST", "The envelope "
                                               "specified either does not exist or you have "
                                               "no rights to it.")
        return Answer(200, self._shown(envelope,
                                       request.query.get("include", "").split(",")))

    def _update(self, request: Request, match: re.Match[str]) -> Answer:
        envelope = self.envelopes.get(match["envelope"])
        if self._ours(match) or envelope is None:
            return self._ours(match) or _error("ENVELOPE_DOES_NOT_EXIST", "no such envelope")
        body = request.json
        if body.get("status") != "voided":
            return _error("INVALID_REQUEST_BODY", "only voiding is served here")
        if not body.get("voidedReason"):
            return _error("ENVELOPE_VOID_REASON_REQUIRED", "A reason is required to void.")
        if envelope["status"] not in OPEN:
            return _error("ENVELOPE_CANNOT_VOID_INVALID_STATE", "Only envelopes in the 'Sent' "
                          "or 'Delivered' states may be voided.")
        envelope.update(status="voided", voidedReason=body["voidedReason"],
                        voidedDateTime=stamp(), statusChangedDateTime=stamp())
        return Answer(200, {"envelopeId": envelope["envelopeId"]})

    def _recipients(self, request: Request, match: re.Match[str]) -> Answer:
        envelope = self.envelopes.get(match["envelope"])
        if self._ours(match) or envelope is None:
            return self._ours(match) or _error("ENVELOPE_DOES_NOT_EXIST", "no such envelope")
        if request.query.get("resend_envelope") != "true" or envelope["status"] not in OPEN:
            return _error("ENVELOPE_INVALID_STATUS", "Envelope status is not sent or delivered.")
        ids = [s.get("recipientId") for s in request.json.get("signers") or []]
        self.resends.append(envelope["envelopeId"])
        return Answer(200, {"recipientUpdateResults": [
            {"recipientId": i, "errorDetails": {"errorCode": "SUCCESS", "message": ""}}
            for i in ids]})

    @staticmethod
    def _shown(envelope: dict[str, Any], include: list[str]) -> dict[str, Any]:
        hidden = {"customFields": "custom_fields", "recipients": "recipients"}
        return {k: v for k, v in envelope.items() if k not in hidden or hidden[k] in include}


def _fields(envelope: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in envelope["customFields"]["textCustomFields"]}


def connect_message(envelope_id: str, event: str = "envelope-completed",
                    custom_fields: dict[str, str] | None = None) -> bytes:
    """A Connect (JSON, SIM) message as DocuSign posts it, envelope custom fields optional."""
    summary: dict[str, Any] = {"envelopeId": envelope_id, "status": event.split("-")[-1]}
    if custom_fields is not None:
        summary["customFields"] = {"textCustomFields": [
            {"name": k, "value": v} for k, v in custom_fields.items()]}
    return json.dumps({
        "event": event, "apiVersion": "v2.1", "uri": f"/restapi/v2.1/accounts/acct-1/"
        f"envelopes/{envelope_id}", "retryCount": 0, "configurationId": 10501,
        "generatedDateTime": stamp(),
        "data": {"accountId": "acct-1", "userId": "u-1", "envelopeId": envelope_id,
                 "envelopeSummary": summary}}).encode()


def connect_headers(body: bytes, *keys: str) -> dict[str, str]:
    """`X-DocuSign-Signature-1..N`: one base64 HMAC-SHA256 of `body` per Connect key."""
    return {f"X-DocuSign-Signature-{n}": base64.b64encode(
        hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()
        for n, key in enumerate(keys, start=1)}
