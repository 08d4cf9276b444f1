"""HubSpot as the CRM: one deal per dealflow deal, written by a batch upsert.

The deal is keyed by the custom unique-value property `dealflow_deal_id`, so
`POST /crm/v3/objects/deals/batch/upsert` with `idProperty: dealflow_deal_id`
creates it once and updates it afterwards: repeating a write whose answer was
lost cannot make a second deal (the call is `repeatable`). The write also
stores the call's idempotency key in `dealflow_key`; `lookup(key)` reads the
deal by `dealflow_deal_id` and tells whether that call went through.

The deal goes to the default pipeline: `qualifiedtobuy` when the lead is
qualified, `closedlost` when not. `setup()` creates the custom deal properties
(`dealflow systems setup`); `check()` says which are missing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from agents.systems.base import Record
from agents.systems.http import ProviderClient, ProviderRefused
from agents.systems.providers import provider_client, required
from state.config import ConfigError, Settings
from state.database import Pool
from state.models import DealInput, LeadRecord, Qualification

SYSTEM = "crm"  # the role: errors read "crm: …", as the sandbox's and the other providers' do
ID_PROPERTY = "dealflow_deal_id"
PIPELINE = "default"
STAGES = {True: "qualifiedtobuy", False: "closedlost"}  # the default pipeline's stage ids
GROUP = "dealinformation"
_BOOL = {"type": "enumeration", "fieldType": "booleancheckbox",
         "options": [{"label": "Yes", "value": "true", "displayOrder": 0, "hidden": False},
                     {"label": "No", "value": "false", "displayOrder": 1, "hidden": False}]}
_TEXT = {"type": "string", "fieldType": "text"}
# The custom deal properties the connector writes: name → (label, definition).
PROPERTIES: dict[str, tuple[str, dict[str, Any]]] = {
    ID_PROPERTY: ("dealflow deal id", {**_TEXT, "hasUniqueValue": True}),
    "dealflow_key": ("dealflow idempotency key", _TEXT),
    "dealflow_currency": ("dealflow currency", _TEXT),
    "dealflow_score": ("dealflow lead score", {"type": "number", "fieldType": "number"}),
    "dealflow_qualified": ("dealflow qualified", _BOOL),
    "dealflow_icp_fit": ("dealflow ICP fit", _BOOL),
    "dealflow_reasons": ("dealflow qualification reasons",
                         {"type": "string", "fieldType": "textarea"}),
}
UPSERT = "/crm/v3/objects/deals/batch/upsert"
NOT_UNIQUE = (f"{SYSTEM}: HubSpot deal property {ID_PROPERTY} exists without unique values: "
              "archive it in HubSpot, then run dealflow systems setup")
_READ = ",".join(["dealname", "amount", "dealstage", "pipeline", "createdate",
                  "hs_lastmodifieddate", *PROPERTIES])


class HubSpotCRM:
    """The CRM interface (`agents.systems.base.CRM`) over HubSpot's CRM v3 API."""

    name, records_label, record_id = "crm", "crm", "id"

    def __init__(self, client: ProviderClient) -> None:
        """A connector calling HubSpot through `client` (base URL and token set)."""
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings, pool: Pool | None = None) -> HubSpotCRM:
        """The connector for `DEALFLOW_HUBSPOT_TOKEN` at `DEALFLOW_HUBSPOT_API_BASE`.

        `pool`: the database its rate limit (if declared) is shared on.
        """
        (token,) = required(settings, "hubspot_token")
        return cls(provider_client(settings, SYSTEM, settings.hubspot_api_base,
                                   {"Authorization": f"Bearer {token}"}, provider="hubspot",
                                   pool=pool))

    def record_qualification(
        self, deal: DealInput, result: Qualification, *, key: str
    ) -> LeadRecord:
        """Create or update the deal with the qualification (an upsert: safe to repeat)."""
        properties = {
            ID_PROPERTY: deal.deal_id, "dealflow_key": key,
            "dealname": f"{deal.client} – {deal.deal_type} ({deal.deal_id})",
            "amount": str(deal.value), "dealflow_currency": deal.currency,
            "pipeline": PIPELINE, "dealstage": STAGES[result.qualified],
            "dealflow_score": str(result.score),
            "dealflow_qualified": _flag(result.qualified),
            "dealflow_icp_fit": _flag(result.icp_fit),
            "dealflow_reasons": "\n".join(result.reasons),
        }
        body = {"inputs": [{"idProperty": ID_PROPERTY, "id": deal.deal_id,
                            "properties": properties}]}
        answer = self.client.send("POST", UPSERT, repeatable=True, json=body).json()
        results = answer.get("results") or []
        if answer.get("errors") or not results:  # a 207: the batch's input was refused
            said = (answer.get("errors") or [{}])[0].get("message") or "no result"
            raise ProviderRefused(SYSTEM, f"POST {UPSERT}: {said}", 207)
        return LeadRecord(record_id=int(results[0]["id"]), deal_id=deal.deal_id,
                          score=result.score, qualified=result.qualified,
                          icp_fit=result.icp_fit)

    def lookup(self, key: str) -> LeadRecord | None:
        """The deal as the call with `key` left it, if that call was the last write."""
        deal = self._deal(deal_id_of(key))
        if deal is None or deal["properties"].get("dealflow_key") != key:
            return None
        found = _record(deal)
        return LeadRecord(record_id=found["id"], deal_id=found["deal_id"],
                          score=found["score"], qualified=found["qualified"],
                          icp_fit=found["icp_fit"])

    def records(self, deal_id: str) -> list[Record]:
        """The HubSpot deal of the dealflow deal (none or one)."""
        deal = self._deal(deal_id)
        return [_record(deal)] if deal is not None else []

    def check(self) -> str:
        """One authenticated read of the deal properties; `ConfigError` naming what is missing."""
        missing, not_unique = self._missing()
        if not_unique:
            raise ConfigError(NOT_UNIQUE)
        if missing:
            raise ConfigError(f"{SYSTEM}: HubSpot deal propert"
                              f"{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} "
                              "missing: run dealflow systems setup")
        return (f"token accepted; deal properties {ID_PROPERTY} (unique) and "
                f"{len(PROPERTIES) - 1} more are set up")

    def setup(self) -> list[str]:
        """Create the custom deal properties that are missing; the ones created."""
        missing, not_unique = self._missing()
        if not_unique:
            raise ConfigError(NOT_UNIQUE)
        created = []
        for name in missing:
            label, definition = PROPERTIES[name]
            try:
                self.client.send("POST", "/crm/v3/properties/deals", repeatable=True, json={
                    "name": name, "label": label, "groupName": GROUP,
                    "description": "Written by dealflow.", **definition})
            except ProviderRefused as exc:
                if exc.status != 409:  # 409: created meanwhile, or by a repeat of a lost answer
                    raise
                continue
            created.append(f"deal property {name}")
        return created

    def _missing(self) -> tuple[list[str], bool]:
        """The connector's properties HubSpot lacks, and whether the id property is not unique."""
        answer = self.client.send("GET", "/crm/v3/properties/deals", repeatable=True).json()
        have = {p["name"]: p for p in answer.get("results", [])}
        missing = [name for name in PROPERTIES if name not in have]
        id_property = have.get(ID_PROPERTY)
        return missing, id_property is not None and not id_property.get("hasUniqueValue")

    def _deal(self, deal_id: str) -> dict[str, Any] | None:
        """The HubSpot deal whose `dealflow_deal_id` is `deal_id`, if there is one."""
        try:
            answer = self.client.send(
                "GET", f"/crm/v3/objects/deals/{quote(deal_id, safe='')}", repeatable=True,
                params={"idProperty": ID_PROPERTY, "properties": _READ})
        except ProviderRefused as exc:
            if exc.status == 404:
                return None
            raise
        deal: dict[str, Any] = answer.json()
        return deal


def deal_id_of(key: str) -> str:
    """The deal id in an idempotency key (`state.effects.effect_key`: deal:step:digest)."""
    return key.rsplit(":", 2)[0]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _record(deal: dict[str, Any]) -> Record:
    """A HubSpot deal as `dealflow records` shows it."""
    props = deal["properties"]
    return {
        "id": int(deal["id"]), "deal_id": props.get(ID_PROPERTY),
        "idempotency_key": props.get("dealflow_key"), "dealname": props.get("dealname"),
        "amount": props.get("amount"), "currency": props.get("dealflow_currency"),
        "pipeline": props.get("pipeline"), "dealstage": props.get("dealstage"),
        "score": int(float(props.get("dealflow_score") or 0)),
        "qualified": props.get("dealflow_qualified") == "true",
        "icp_fit": props.get("dealflow_icp_fit") == "true",
        "reasons": [r for r in (props.get("dealflow_reasons") or "").split("\n") if r],
        "created_at": deal.get("createdAt"), "updated_at": deal.get("updatedAt"),
    }
