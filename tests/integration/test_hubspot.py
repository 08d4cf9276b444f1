"""The HubSpot CRM connector against a local HubSpot, deals on real Postgres.

Every request the connector makes is checked against HubSpot's OpenAPI document
(`tests/providers/openapi/hubspot.json`); what does not fit is in `violations`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from agents.lead.scoring import score_lead
from agents.systems.http import ProviderRefused
from agents.systems.hubspot import ID_PROPERTY, PROPERTIES, HubSpotCRM
from dealflow.api import DealService
from state.config import ConfigError, Settings
from tests.helpers import make_deal
from tests.providers.connect import attempts, with_hubspot
from tests.providers.hubspot import HubSpotServer

UPSERT = "/crm/v3/objects/deals/batch/upsert"


@pytest.fixture
def hubspot() -> Iterator[HubSpotServer]:
    """A local HubSpot with dealflow's deal properties set up."""
    with HubSpotServer() as server:
        HubSpotCRM.from_settings(with_hubspot(Settings(), server)).setup()
        yield server


def _one_deal(server: HubSpotServer, deal_id: str) -> dict[str, Any]:
    deals = server.deals_with(ID_PROPERTY, deal_id)
    assert len(deals) == 1, deals
    return deals[0]


def test_check_names_the_missing_property_and_setup_creates_it() -> None:
    with HubSpotServer() as server:
        crm = HubSpotCRM.from_settings(with_hubspot(Settings(), server))
        with pytest.raises(ConfigError, match=r"^crm: HubSpot deal properties dealflow_deal_id, .*"
                           r"missing: run dealflow systems setup$"):
            crm.check()
        created = crm.setup()
        assert created == [f"deal property {name}" for name in PROPERTIES]
        assert server.properties[ID_PROPERTY]["hasUniqueValue"] is True
        assert crm.check() == ("token accepted; deal properties dealflow_deal_id (unique) "
                               f"and {len(PROPERTIES) - 1} more are set up")
        assert crm.setup() == []  # idempotent
        posts = server.requests("POST", "/crm/v3/properties/deals")
        assert len(posts) == len(PROPERTIES)
        assert server.violations == []


def test_setup_completes_a_partial_setup_and_refuses_a_non_unique_id_property() -> None:
    with HubSpotServer() as server:
        crm = HubSpotCRM.from_settings(with_hubspot(Settings(), server))
        server.fail("POST", "/crm/v3/properties/deals", "drop")  # created, answer lost
        assert len(crm.setup()) == len(PROPERTIES) - 1  # the lost one came back 409: there
        assert set(PROPERTIES) <= set(server.properties)
    with HubSpotServer() as server:
        server.properties[ID_PROPERTY] = {"name": ID_PROPERTY, "type": "string",
                                          "hasUniqueValue": False}
        crm = HubSpotCRM.from_settings(with_hubspot(Settings(), server))
        with pytest.raises(ConfigError, match="exists without unique values"):
            crm.setup()


def test_a_bad_token_is_refused_with_401(hubspot: HubSpotServer) -> None:
    crm = HubSpotCRM.from_settings(with_hubspot(Settings(), hubspot,
                                                hubspot_token=SecretStr("pat-wrong")))
    with pytest.raises(ProviderRefused, match=r"^crm: GET /crm/v3/properties/deals: 401") \
            as refused:
        crm.check()
    assert refused.value.status == 401


def test_without_setup_the_write_is_refused_and_the_step_goes_to_review(
        settings: Settings) -> None:
    with HubSpotServer() as server, DealService(with_hubspot(settings, server)) as service:
        report = service.start(make_deal("HS-NOSETUP"))
        assert report.status == "waiting_review"
        failure = report.context["failures"][0]
        assert failure["step"] == "qualify_lead" and failure["attempts"] == 1
        assert failure["error_type"] == "ProviderRefused"
        assert failure["error"].startswith(f"crm: POST {UPSERT}: 400 idProperty")
        assert server.deals == {}


def test_upsert_is_keyed_by_the_deal_and_lookup_tells_which_call_wrote(
        hubspot: HubSpotServer) -> None:
    crm = HubSpotCRM.from_settings(with_hubspot(Settings(), hubspot))
    deal = make_deal("HS:1")  # a deal id with ':' (the key's separator) and URL-quoted
    first = crm.record_qualification(deal, score_lead(deal), key="HS:1:qualify_lead:aaa")
    again = crm.record_qualification(deal, score_lead(deal), key="HS:1:qualify_lead:bbb")
    assert first.record_id == again.record_id == int(_one_deal(hubspot, "HS:1")["id"])
    assert crm.lookup("HS:1:qualify_lead:bbb") == again
    assert crm.lookup("HS:1:qualify_lead:aaa") is None  # a later write replaced it
    assert crm.lookup("HS-NONE:qualify_lead:aaa") is None
    (record,) = crm.records("HS:1")
    assert record["idempotency_key"] == "HS:1:qualify_lead:bbb"
    assert record["dealstage"] == "qualifiedtobuy" and record["score"] == first.score
    assert hubspot.violations == []


def test_the_local_hubspot_refuses_what_hubspots_openapi_document_does_not_allow(
        hubspot: HubSpotServer) -> None:
    auth = {"Authorization": f"Bearer {hubspot.token}"}
    misspelled = httpx.post(hubspot.base_url + UPSERT, headers=auth, json={"inputs": [
        {"idPropery": ID_PROPERTY, "id": "D-1", "properties": {"dealname": "x"}}]})
    assert misspelled.status_code == 400 and misspelled.json()["category"] == "VALIDATION_ERROR"
    listed = httpx.get(hubspot.base_url + "/crm/v3/objects/deals/1", headers=auth,
                       params={"archived": "no"})
    assert listed.status_code == 400
    assert hubspot.violations == [
        f"POST {UPSERT}: inputs/0: Additional properties are not allowed ('idPropery' was "
        "unexpected)",
        "GET /crm/v3/objects/deals/1: query parameter 'archived': 'no' is not of type "
        "'boolean'"]
    assert hubspot.deals == {}


def test_a_deal_runs_with_hubspot_to_the_contract_wait(settings: Settings,
                                                      hubspot: HubSpotServer) -> None:
    with DealService(with_hubspot(settings, hubspot)) as service:
        report = service.start(make_deal("HS-1"))
        assert report.status == "waiting_signature"
        (record,) = service.records("HS-1")["crm"]
        assert isinstance(record["id"], int) and record["branch"] == "current"
        props = _one_deal(hubspot, "HS-1")["properties"]
        assert props["dealflow_qualified"] == "true" and props["amount"] == "12000.00"
        weak = service.start(make_deal("HS-WEAK", lead={"company_size": 5, "engagement": 5,
                                                        "industry": "mining"}))
        assert weak.status == "disqualified"
        assert _one_deal(hubspot, "HS-WEAK")["properties"]["dealstage"] == "closedlost"
    assert hubspot.violations == []


def test_a_lost_upsert_answer_is_repeated_and_makes_one_deal(settings: Settings,
                                                            hubspot: HubSpotServer) -> None:
    hubspot.fail("POST", UPSERT, "drop")
    with DealService(with_hubspot(settings, hubspot)) as service:
        assert service.start(make_deal("HS-LOST")).status == "waiting_signature"
        assert attempts(service.data.effects.effects("HS-LOST"),
                        "crm.record_qualification") == [1]
    _one_deal(hubspot, "HS-LOST")
    assert len(hubspot.requests("POST", UPSERT)) == 2  # the repeat of an idempotent upsert
    assert hubspot.violations == []


def test_a_lost_answer_without_repeats_is_reconciled_by_lookup(settings: Settings,
                                                              hubspot: HubSpotServer) -> None:
    hubspot.fail("POST", UPSERT, "drop")
    with DealService(with_hubspot(settings, hubspot, provider_retries=0)) as service:
        assert service.start(make_deal("HS-RECON")).status == "waiting_signature"
        assert attempts(service.data.effects.effects("HS-RECON"),
                        "crm.record_qualification") == [2]
        assert [e.action for e in service.audit("HS-RECON")
                if e.step == "qualify_lead" and e.action.startswith("effect.")] == \
            ["effect.reconciled"]
    _one_deal(hubspot, "HS-RECON")
    assert len(hubspot.requests("POST", UPSERT)) == 1  # the ledger asked instead of writing
    assert hubspot.violations == []


def test_429_and_503_bursts_complete_without_spending_attempts(
        settings: Settings, hubspot: HubSpotServer) -> None:
    hubspot.fail("POST", UPSERT, "429", retry_after="1")
    hubspot.fail("POST", UPSERT, "503", times=2)
    with DealService(with_hubspot(settings, hubspot)) as service:
        report = service.start(make_deal("HS-BUSY"))
        assert report.status == "waiting_signature" and report.context["failures"] == []
        assert attempts(service.data.effects.effects("HS-BUSY"),
                        "crm.record_qualification") == [1]
    _one_deal(hubspot, "HS-BUSY")
    assert [status for request, status in hubspot.log if request.path == UPSERT] == \
        [429, 503, 503, 200]


def test_hubspot_down_sends_the_step_to_review_then_retry_completes(
        settings: Settings, hubspot: HubSpotServer) -> None:
    hubspot.down()
    with DealService(with_hubspot(settings, hubspot, provider_retries=1)) as service:
        report = service.start(make_deal("HS-DOWN"))
        assert report.status == "waiting_review"
        failure = report.context["failures"][0]
        assert failure["step"] == "qualify_lead" and failure["system"] == "crm"
        assert failure["attempts"] == settings.max_attempts
        # the last attempt asked whether an earlier one went through (the ledger's lookup)
        assert re.fullmatch(r"crm: (POST|GET) /crm/v3/objects/deals/\S+: 503 hubspot is "
                            r"down", failure["error"])
        assert "\n" not in failure["error"] and hubspot.deals == {}
        hubspot.up()
        assert service.resume("HS-DOWN", {"decision": "retry"}).status == "waiting_signature"
    _one_deal(hubspot, "HS-DOWN")
