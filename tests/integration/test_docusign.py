"""E-signature on DocuSign against a local DocuSign, and DocuSign Connect into the API.

Deals run on real Postgres with `esign="docusign"`; the connector speaks to
`tests.providers.docusign.DocuSignServer` over real sockets, and every request
it makes is checked against DocuSign's OpenAPI document (`violations`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from agents.systems.docusign import DocuSignESign
from dealflow.api import DealService
from dealflow.service.run import service_app
from state.config import Settings
from state.models import Contract
from state.registry import thread_id_for
from tests.conftest import cli_env, run_cli
from tests.helpers import make_deal
from tests.integration.test_inbound_faults import run_jobs  # a worker of this process
from tests.providers.connect import FAST, attempts
from tests.providers.docusign import DocuSignServer, connect_headers, connect_message

ENVELOPES = r"/restapi/v2.1/accounts/acct-1/envelopes"
KEYS = ("connect-key-old", "connect-key-new")  # two active keys: rotation


@pytest.fixture
def docusign() -> Iterator[DocuSignServer]:
    with DocuSignServer() as server:
        yield server


def with_docusign(settings: Settings, server: DocuSignServer, **extra: Any) -> Settings:
    """`settings` with e-signature served by the local DocuSign `server`."""
    return settings.model_copy(update={
        **FAST, "esign": "docusign", "docusign_base_uri": f"{server.base_url}/restapi",
        "docusign_account_id": server.account_id,
        "docusign_access_token": SecretStr(server.token), **extra})


def envelope_effects(service: DealService, deal_id: str) -> list[int]:
    return attempts(service.data.effects.effects(deal_id), "esign.send_envelope")


def test_a_deal_is_sent_reminded_and_signed_on_docusign(settings: Settings,
                                                        docusign: DocuSignServer) -> None:
    with DealService(with_docusign(settings, docusign)) as service:
        report = service.start(make_deal("DS-1"))
        assert report.status == "waiting_signature"
        (envelope,) = docusign.sent("DS-1")
        assert report.pending is not None
        assert report.pending["envelope_id"] == envelope["envelopeId"]
        fields = {f["name"]: f["value"] for f in envelope["customFields"]["textCustomFields"]}
        (key,) = [e["idempotency_key"] for e in service.data.effects.effects("DS-1")
                  if e["effect"] == "esign.send_envelope"]
        assert fields["dealflow_key"] == key and fields["dealflow_deal_id"] == "DS-1"
        (post,) = docusign.requests("POST", ENVELOPES)
        (document,) = post.json["documents"]
        text = base64.b64decode(document["documentBase64"]).decode()
        assert document["fileExtension"] == "txt" and "Deal reference: DS-1" in text
        (signer,) = envelope["recipients"]["signers"]
        assert (signer["name"], signer["email"], signer["recipientId"]) == (
            "Sam Signer", "sam@example.com", "1")
        records = service.records("DS-1")["envelopes"]
        assert [r["envelope_id"] for r in records] == [envelope["envelopeId"]]
        remind = next(d for d in service.data.deadlines.for_thread(thread_id_for("DS-1"))
                      if d.name == "signature.remind")
        assert service.fire_deadline(remind.id) == "fired"
        assert docusign.resends == [envelope["envelopeId"]]
        docusign.finish(envelope["envelopeId"])
        assert service.event("DS-1", "signature.completed").status == "completed"
    assert docusign.violations == []


def test_a_lost_answer_to_the_send_makes_one_envelope(settings: Settings,
                                                      docusign: DocuSignServer) -> None:
    docusign.fail("POST", ENVELOPES, "drop")
    with DealService(with_docusign(settings, docusign)) as service:
        assert service.start(make_deal("DS-LOST")).status == "waiting_signature"
        assert envelope_effects(service, "DS-LOST") == [2]  # the second attempt asked first
        reconciled = [e for e in service.audit("DS-LOST") if e.action == "effect.reconciled"]
    assert len(docusign.sent("DS-LOST")) == 1 and len(reconciled) == 1
    assert [status for _, status in docusign.log if status == 0] == [0]  # the drop happened
    assert docusign.violations == []


def test_a_lagging_list_is_waited_out_before_sending_again(settings: Settings) -> None:
    with DocuSignServer(lag=2.0) as docusign:
        docusign.fail("POST", ENVELOPES, "drop")
        patient = with_docusign(settings, docusign, provider_lag_seconds=3.5)
        with DealService(patient) as service:
            assert service.start(make_deal("DS-LAG")).status == "waiting_signature"
        assert len(docusign.sent("DS-LAG")) == 1
        assert len(docusign.requests("GET", ENVELOPES)) >= 2  # asked until the list caught up
        # the hazard it avoids: a lookup that does not wait sends a second envelope
        docusign.fail("POST", ENVELOPES, "drop")
        with DealService(with_docusign(settings, docusign, provider_lag_seconds=0)) as service:
            assert service.start(make_deal("DS-HASTY")).status == "waiting_signature"
        assert len(docusign.sent("DS-HASTY")) == 2
        assert docusign.violations == []


def test_rate_limits_and_503_bursts_are_waited_out_without_spending_attempts(
        settings: Settings, docusign: DocuSignServer) -> None:
    docusign.fail("POST", ENVELOPES, "429", times=2, retry_after="1")
    docusign.fail("POST", ENVELOPES, "503", times=3)
    with DealService(with_docusign(settings, docusign, max_attempts=1,
                                   provider_retries=4)) as service:
        started = time.monotonic()
        assert service.start(make_deal("DS-RL")).status == "waiting_signature"
        assert time.monotonic() - started >= 2.0  # Retry-After: 1, twice
        assert envelope_effects(service, "DS-RL") == [1]
        _, spans = service.trace("DS-RL")
    assert [s.attempt for s in spans if s.node == "send_for_signature"] == [1]
    assert len(docusign.sent("DS-RL")) == 1
    assert len(docusign.requests("POST", ENVELOPES)) == 6


def test_docusign_down_sends_the_step_to_review_then_a_retry_sends_once(
        settings: Settings, docusign: DocuSignServer) -> None:
    with DealService(with_docusign(settings, docusign, provider_retries=1,
                                   max_attempts=2)) as service:
        docusign.down()
        report = service.start(make_deal("DS-DOWN"))
        assert report.status == "waiting_review"
        failure = report.context["failures"][0]
        assert failure["step"] == "send_for_signature" and failure["system"] == "esign"
        assert failure["attempts"] == 2
        # the last attempt asked DocuSign first whether the first went through
        assert failure["error"] == ("esign: GET /v2.1/accounts/acct-1/envelopes: 503 "
                                    "docusign is down")
        assert docusign.token not in failure["error"]
        docusign.up()
        assert service.resume("DS-DOWN", {"decision": "retry"}).status == "waiting_signature"
    assert len(docusign.sent("DS-DOWN")) == 1


def test_the_local_docusign_keeps_docusigns_rules(docusign: DocuSignServer) -> None:
    url, auth = docusign.base_url + ENVELOPES, {"Authorization": f"Bearer {docusign.token}"}
    since = {"from_date": "2020-01-01T00:00:00Z"}
    assert httpx.get(url, params=since).status_code == 401
    assert httpx.get(url, headers=auth).json()["errorCode"] == "INVALID_REQUEST_PARAMETER"
    assert "envelopes" not in httpx.get(url, headers=auth, params=since).json()  # empty
    esign = DocuSignESign.from_settings(with_docusign(Settings(), docusign))
    contract = Contract(contract_id="CTR-9", template_version="t", sha256="0", text="terms")
    sent = esign.send_envelope("D-9", contract, "Sam", "sam@example.com", key="D-9:k")
    (bare,) = httpx.get(url, headers=auth, params=since).json()["envelopes"]
    assert bare["envelopeId"] == sent.envelope_id and "customFields" not in bare
    assert esign.lookup("D-9:k") == sent and esign.open_envelopes("D-9") == [sent.envelope_id]
    assert esign.void_envelope(sent.envelope_id, reason="r", key="v") == sent
    assert esign.void_envelope(sent.envelope_id, reason="r", key="v") == sent  # voided before
    assert esign.open_envelopes("D-9") == [] and docusign.violations == []
    misfit = httpx.post(url, headers=auth, json={"status": "sent", "recipients": {
        "signers": [{"recipientId": 1, "name": "Sam", "mail": "sam@example.com"}]}})
    assert misfit.status_code == 400 and len(docusign.violations) == 2


def test_systems_check_reads_the_account_and_names_a_refused_token(
        docusign: DocuSignServer) -> None:
    env = cli_env(None, DEALFLOW_ESIGN="docusign", DEALFLOW_DOCUSIGN_ACCOUNT_ID="acct-1",
                  DEALFLOW_DOCUSIGN_BASE_URI=f"{docusign.base_url}/restapi",
                  DEALFLOW_DOCUSIGN_ACCESS_TOKEN=docusign.token)
    done = run_cli(["systems", "check", "--json"], env)
    assert done.returncode == 0, done.stderr
    assert {"system": "esign", "provider": "docusign", "ok": True, "said": "reachable, account "
            "dealflow tests accepted the token"} in json.loads(done.stdout)["systems"]
    wrong = run_cli(["systems", "check"], {**env, "DEALFLOW_DOCUSIGN_ACCESS_TOKEN": "ds-wrong"})
    assert wrong.returncode == 1 and wrong.stderr.strip() == (
        "dealflow systems check: error: esign (docusign): GET /v2.1/accounts/acct-1: 401 "
        "invalid credentials")
    assert "ds-wrong" not in wrong.stdout + wrong.stderr
    assert [r.method for r in docusign.requests()] == ["GET", "GET"]  # it created nothing


# --- DocuSign Connect: POST /v1/webhooks/docusign -------------------------------------


@pytest.fixture
def connected(settings: Settings, docusign: DocuSignServer) -> Iterator[DealService]:
    keys = tuple(SecretStr(k) for k in KEYS)
    with DealService(with_docusign(settings, docusign, docusign_connect_key=keys)) as svc:
        yield svc


@pytest.fixture
def client(connected: DealService) -> Iterator[TestClient]:
    with TestClient(service_app(connected, workers=0), raise_server_exceptions=False) as api:
        yield api


def deliver(client: TestClient, envelope_id: str, event: str = "envelope-completed",
            keys: tuple[str, ...] = KEYS[:1], **more: Any) -> Any:
    body = connect_message(envelope_id, event, **more)
    return client.post("/v1/webhooks/docusign", content=body,
                       headers={"Content-Type": "application/json",
                                **connect_headers(body, *keys)})


def sent_for_signature(service: DealService, deal_id: str) -> str:
    report = service.start(make_deal(deal_id))
    assert report.status == "waiting_signature" and report.pending is not None
    return str(report.pending["envelope_id"])


def event_jobs(service: DealService) -> int:
    with service.pool.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM procrastinate_jobs"
                           " WHERE args->>'action' = 'event'").fetchone()
    assert row is not None
    return int(row["n"])


def test_connect_needs_a_signature_by_one_of_the_keys(
        connected: DealService, client: TestClient, settings: Settings) -> None:
    envelope = sent_for_signature(connected, "CN-1")
    body = connect_message(envelope)
    for headers in ({}, connect_headers(body, "not-a-key"),
                    {"X-DocuSign-Signature-1": "bm9wZQ=="}):
        refused = client.post("/v1/webhooks/docusign", content=body, headers=headers)
        assert refused.status_code == 401 and "X-DocuSign-Signature" in refused.json()["error"]
    assert event_jobs(connected) == 0 and connected.status("CN-1").status == "waiting_signature"
    # rotation: the new key's signature in the second header is enough
    taken = deliver(client, envelope, keys=("retired-key", KEYS[1]))
    assert taken.status_code == 200 and taken.json()["job_id"] is not None, taken.text
    run_jobs(connected)
    assert connected.status("CN-1").status == "completed"
    unconfigured = connected.settings.model_copy(update={"docusign_connect_key": ()})
    with DealService(unconfigured) as bare, TestClient(service_app(bare, workers=0)) as api:
        refused = deliver(api, envelope)
        assert refused.status_code == 401 and "not configured" in refused.json()["error"]


def test_twenty_concurrent_deliveries_of_one_completion_are_one_transition(
        connected: DealService, client: TestClient) -> None:
    envelope = sent_for_signature(connected, "CN-STORM")
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: deliver(client, envelope), range(20)))
    assert [a.status_code for a in answers] == [200] * 20, answers[0].text
    assert sum(1 for a in answers if not a.json().get("duplicate")) == 1
    assert event_jobs(connected) == 1
    run_jobs(connected)
    assert connected.status("CN-STORM").status == "completed"
    signed = [e for e in connected.audit("CN-STORM") if e.key == "CN-STORM.signature"]
    assert len(signed) == 1
    assert len(connected.records("CN-STORM")["invoices"]) == 1
    # late and out of order: a repeat, a declined after the completion, a sent
    assert deliver(client, envelope).json()["duplicate"] is True
    late = deliver(client, envelope, "envelope-declined")
    assert late.status_code == 200 and "ignored" in late.json()
    assert "ignored" in deliver(client, envelope, "envelope-sent").json()
    assert event_jobs(connected) == 1 and connected.status("CN-STORM").status == "completed"


def test_a_completion_after_the_deal_voided_the_envelope_is_acknowledged_and_audited(
        connected: DealService, client: TestClient, docusign: DocuSignServer) -> None:
    envelope = sent_for_signature(connected, "CN-VOID")
    expire = next(d for d in connected.data.deadlines.for_thread(thread_id_for("CN-VOID"))
                  if d.name == "signature.expire")
    assert connected.fire_deadline(expire.id) == "expired"
    assert docusign.envelopes[envelope]["status"] == "voided"
    for _ in range(2):
        answer = deliver(client, envelope)
        assert answer.status_code == 200 and "voided" in answer.json()["ignored"]
    ignored = [e for e in connected.audit("CN-VOID") if e.action == "webhook.ignored"]
    assert len(ignored) == 1 and ignored[0].detail["envelope_id"] == envelope
    assert event_jobs(connected) == 0
    assert connected.status("CN-VOID").status == "expired"
    assert connected.records("CN-VOID")["invoices"] == []


def test_envelopes_of_other_senders_are_ignored_and_unrecorded_ones_asked_again(
        connected: DealService, client: TestClient) -> None:
    foreign = deliver(client, "11111111-2222-3333-4444-555555555555",
                      custom_fields={"Region": "West"})
    assert foreign.status_code == 200 and "did not send" in foreign.json()["ignored"]
    unknown = deliver(client, "11111111-2222-3333-4444-555555555555")
    assert unknown.status_code == 404  # maybe ours, not recorded yet: Connect retries
    malformed = client.post("/v1/webhooks/docusign", content=b"{}",
                            headers=connect_headers(b"{}", KEYS[0]))
    assert malformed.status_code == 422
    declined = sent_for_signature(connected, "CN-DEC")
    assert deliver(client, declined, "envelope-declined").status_code == 200
    run_jobs(connected)
    assert connected.status("CN-DEC").status == "declined"
