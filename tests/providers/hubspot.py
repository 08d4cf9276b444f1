"""A local HubSpot: deals (CRM objects v3) and deal properties, with HubSpot's rules.

What it enforces, as HubSpot does: a Bearer private-app token (401 otherwise);
a write naming a property the account does not have is refused 400
(`PROPERTY_DOESNT_EXIST`), and so is a value outside an enumeration's options,
a non-number for a number, or a read-only property; `idProperty` must be a
unique-value property; a unique value held by another deal is refused. The
batch upsert creates the deal the first time its `idProperty` value is seen and
updates it afterwards. Deal ids are numeric strings, as HubSpot's are.
Every request must also fit HubSpot's OpenAPI document (the part in
`tests/providers/openapi/hubspot.json`): a misfit is answered 400 and kept in
`violations`.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.providers.server import Answer, ProviderServer, Request
from tests.providers.swagger import OpenAPIDocument

STAGES = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
          "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"]
READ_ONLY = {"hs_object_id", "createdate", "hs_lastmodifieddate"}
DEFAULT_READ = ["createdate", "hs_lastmodifieddate", "hs_object_id", "dealname", "amount",
                "dealstage", "pipeline", "closedate"]
_GROUPS = {"dealinformation"}
_TYPES = {"bool", "date", "datetime", "enumeration", "number", "phone_number", "string"}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _options(*values: str) -> list[dict[str, Any]]:
    return [{"label": v, "value": v, "displayOrder": i, "hidden": False}
            for i, v in enumerate(values)]


def _builtin(name: str, type_: str, field_type: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "label": name, "type": type_, "fieldType": field_type,
            "groupName": "dealinformation", "hasUniqueValue": False, "hidden": False,
            "hubspotDefined": True, "options": [], "description": "", **extra}


def _error(status: int, category: str, message: str, **context: list[str]) -> Answer:
    return Answer(status, {"status": "error", "message": message, "category": category,
                           "correlationId": str(uuid.uuid4()), "context": context})


class HubSpotServer(ProviderServer):
    """HubSpot's deals and deal-properties endpoints on a local port."""

    openapi = OpenAPIDocument(Path(__file__).with_name("openapi") / "hubspot.json")

    def __init__(self, token: str = "pat-local-hubspot") -> None:
        """A HubSpot account with the built-in deal properties only; `token` authenticates."""
        super().__init__("hubspot")
        self.token = token
        self.properties: dict[str, dict[str, Any]] = {p["name"]: p for p in [
            _builtin("dealname", "string", "text"),
            _builtin("amount", "number", "number"),
            _builtin("closedate", "datetime", "date"),
            _builtin("description", "string", "textarea"),
            _builtin("pipeline", "enumeration", "select", options=_options("default")),
            _builtin("dealstage", "enumeration", "radio", options=_options(*STAGES)),
            *(_builtin(name, "datetime" if name != "hs_object_id" else "number",
                       "text") for name in sorted(READ_ONLY)),
        ]}
        self.deals: dict[str, dict[str, Any]] = {}
        self._next_id = 40_000_000_001
        base = "/crm/v3"
        self.route("GET", f"{base}/properties/deals", self._list_properties)
        self.route("POST", f"{base}/properties/deals", self._create_property)
        self.route("GET", f"{base}/properties/deals/(?P<name>[^/]+)", self._read_property)
        self.route("POST", f"{base}/objects/deals/batch/upsert", self._upsert)
        self.route("GET", f"{base}/objects/deals/(?P<id>[^/]+)", self._read_deal)

    def authorized(self, request: Request) -> bool:
        """A private app's token as `Authorization: Bearer`."""
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def misfit(self, problem: str) -> Answer:
        """HubSpot's 400 for a request its OpenAPI document does not allow."""
        return _error(400, "VALIDATION_ERROR", problem)

    def deals_with(self, name: str, value: str) -> list[dict[str, Any]]:
        """The stored deals whose property `name` is `value` (for the tests' counts)."""
        with self.lock:
            return [d for d in self.deals.values() if d["properties"].get(name) == value]

    def _list_properties(self, request: Request, match: re.Match[str]) -> Answer:
        return Answer(200, {"results": list(self.properties.values())})

    def _read_property(self, request: Request, match: re.Match[str]) -> Answer:
        found = self.properties.get(match["name"])
        if found is None:
            return _error(404, "OBJECT_NOT_FOUND",
                          f"Unable to find property with name: {match['name']}")
        return Answer(200, found)

    def _create_property(self, request: Request, match: re.Match[str]) -> Answer:
        body = request.json or {}
        absent = [f for f in ("name", "label", "type", "fieldType", "groupName")
                  if not body.get(f)]
        if absent:
            return _error(400, "VALIDATION_ERROR", f"Missing required fields: {absent}")
        name = body["name"]
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or body["type"] not in _TYPES:
            return _error(400, "VALIDATION_ERROR", f"Invalid property definition for {name}")
        if body["groupName"] not in _GROUPS:
            return _error(400, "VALIDATION_ERROR",
                          f"Property group {body['groupName']} does not exist")
        if body["type"] == "enumeration" and not body.get("options"):
            return _error(400, "VALIDATION_ERROR", "Enumeration properties need options")
        if name in self.properties:
            return _error(409, "OBJECT_ALREADY_EXISTS", f"Property named '{name}' already "
                          "exists.")
        self.properties[name] = {"hasUniqueValue": False, "hidden": False, "options": [],
                                 "description": "", **body, "hubspotDefined": False,
                                 "createdAt": _now(), "archived": False}
        return Answer(201, self.properties[name])

    def _invalid(self, properties: dict[str, Any]) -> Answer | None:
        """HubSpot's 400 for property values it does not accept, or None."""
        problems = []
        for name, value in properties.items():
            spec = self.properties.get(name)
            if spec is None:
                problems.append((name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not '
                                 "exist"))
            elif name in READ_ONLY:
                problems.append((name, "READ_ONLY_VALUE", f"{name} is a read only property"))
            elif not isinstance(value, str):
                problems.append((name, "INVALID_STRING", f"{value!r} is not a string"))
            elif spec["type"] == "number" and value != "" and not _number(value):
                problems.append((name, "INVALID_FLOAT", f"{value} was not a valid number."))
            elif spec["type"] == "enumeration" and value != "" and value not in {
                    o["value"] for o in spec["options"]}:
                problems.append((name, "INVALID_OPTION", f"{value} was not one of the allowed "
                                 f"options for {name}"))
        if not problems:
            return None
        said = ", ".join(f'{{"isValid":false,"message":"{m}","error":"{e}","name":"{n}"}}'
                         for n, e, m in problems)
        return _error(400, "VALIDATION_ERROR", f"Property values were not valid: [{said}]")

    def _upsert(self, request: Request, match: re.Match[str]) -> Answer:
        inputs = (request.json or {}).get("inputs")
        if not isinstance(inputs, list) or not inputs:
            return _error(400, "VALIDATION_ERROR", "inputs: must not be empty")
        for item in inputs:  # validate all before writing any, as one batch
            id_property = item.get("idProperty")
            spec = self.properties.get(id_property or "")
            if spec is None or not spec.get("hasUniqueValue"):
                return _error(400, "VALIDATION_ERROR", f"idProperty {id_property!r} is not a "
                              "unique-value property of deals")
            if not isinstance(item.get("id"), str) or not isinstance(item.get("properties"),
                                                                     dict):
                return _error(400, "VALIDATION_ERROR", "each input needs an id and properties")
            bad = self._invalid({**item["properties"], id_property: item["id"]})
            if bad is not None:
                return bad
        started, results = _now(), []
        for item in inputs:
            existing = self.deals_with(item["idProperty"], item["id"])
            deal = existing[0] if existing else None
            values = {**item["properties"], item["idProperty"]: item["id"]}
            clash = self._unique_clash(values, deal)
            if clash is not None:
                return clash
            if deal is None:
                deal_id, self._next_id = str(self._next_id), self._next_id + 1
                deal = {"id": deal_id, "createdAt": _now(), "archived": False,
                        "properties": {"hs_object_id": deal_id, "createdate": _now()}}
                self.deals[deal_id] = deal
            deal["properties"].update(values)
            deal["updatedAt"] = deal["properties"]["hs_lastmodifieddate"] = _now()
            results.append({**deal, "properties": dict(deal["properties"]),
                            "new": not existing})
        return Answer(200, {"status": "COMPLETE", "results": results, "requestedAt": started,
                            "startedAt": started, "completedAt": _now()})

    def _unique_clash(self, values: dict[str, str], deal: dict[str, Any] | None
                      ) -> Answer | None:
        for name, value in values.items():
            if self.properties[name].get("hasUniqueValue") and value != "":
                others = [d for d in self.deals_with(name, value) if d is not deal]
                if others:
                    return _error(409, "CONFLICT", f"A deal with {name}={value} already "
                                  f"exists (id {others[0]['id']})")
        return None

    def _read_deal(self, request: Request, match: re.Match[str]) -> Answer:
        wanted_id = unquote(match["id"])
        id_property = request.query.get("idProperty")
        if id_property:
            spec = self.properties.get(id_property)
            if spec is None or not spec.get("hasUniqueValue"):
                return _error(400, "VALIDATION_ERROR", f"idProperty {id_property} is not a "
                              "unique-value property of deals")
            found = self.deals_with(id_property, wanted_id)
            deal = found[0] if found else None
        else:
            deal = self.deals.get(wanted_id)
        if deal is None:
            return _error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually "
                          "numeric.", id=[wanted_id])
        wanted = [p for p in request.query.get("properties", "").split(",") if p] \
            or DEFAULT_READ
        props = deal["properties"]
        shown = {name: props.get(name) for name in {*wanted, *READ_ONLY}
                 if name in self.properties}
        return Answer(200, {"id": deal["id"], "properties": shown, "archived": False,
                            "createdAt": deal["createdAt"], "updatedAt": deal["updatedAt"]})


def _number(value: str) -> bool:
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True
