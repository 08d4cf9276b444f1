"""Regenerate `hubspot.json` or `asana.json`: the part of a vendor's OpenAPI 3 dealflow uses.

Sources (each read with `git show COMMIT:PATH` from a clone of the repository):
- HubSpot: github.com/HubSpot/HubSpot-public-api-spec-collection at commit 99893791
  (`HUBSPOT.commit`), the CRM deals object API v3 (`.../Deals/Rollouts/424/v3/deals.json`)
  and the properties API v3 (`.../Properties/Rollouts/145899/v3/properties.json`). That
  document names the deals paths by the object type id, `/crm/v3/objects/0-3/...`;
  HubSpot takes the name `deals` there as well, which is what the connector
  calls and what the same file named up to commit 90a7c02f (August 2025, with
  the same parameters and request schemas), so the kept paths say `deals`.
- Asana: github.com/Asana/openapi at commit fc9f8dcf (`ASANA.commit`), `defs/asana_oas.yaml`.

Kept: the operations in `operations` with their path and query parameters
(path-level ones and `$ref`s inlined) and their `application/json` request
body; of each schema in `fields`, only the listed properties (`allOf` parents
flattened into one object), without descriptions, with `additionalProperties:
false` so that a misspelled or unexpected field fails validation in the local
server (`tests.providers.hubspot`, `tests.providers.asana`). Every kept name is
checked against the source: a field the source lacks or marks `readOnly`, a
required field left out, a schema referenced but not kept stop the script.
Answers are not kept: the local servers check requests only.

    git clone https://github.com/Asana/openapi /tmp/asana-openapi
    python tests/providers/openapi/oas3_extract.py asana /tmp/asana-openapi
    git clone https://github.com/HubSpot/HubSpot-public-api-spec-collection /tmp/hubspot-specs
    python tests/providers/openapi/oas3_extract.py hubspot /tmp/hubspot-specs
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML, installed with langchain

HERE = Path(__file__).parent
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# The schema keywords kept: those that validate (and `deprecated`, for the reader).
KEEP = ("type", "format", "enum", "items", "properties", "additionalProperties", "required",
        "nullable", "minimum", "maximum", "minLength", "maxLength", "pattern", "allOf",
        "anyOf", "oneOf", "deprecated")


@dataclass(frozen=True)
class Vendor:
    """Where a vendor's document is, and what of it dealflow uses."""

    title: str
    repo: str
    commit: str
    operations: list[tuple[str, str, str]]  # (source file, method, path as in the source)
    fields: dict[str, list[str]]  # schema name → the properties kept
    rename: dict[str, str] = field(default_factory=dict)  # source path prefix → kept prefix


_DEALS = "PublicApiSpecs/CRM/Deals/Rollouts/424/v3/deals.json"
_PROPERTIES = "PublicApiSpecs/CRM/Properties/Rollouts/145899/v3/properties.json"
HUBSPOT = Vendor(
    title="HubSpot CRM deals and properties API v3",
    repo="HubSpot/HubSpot-public-api-spec-collection",
    commit="99893791383254f52aa07662baeb98aad65cc710",
    operations=[(_DEALS, "post", "/crm/v3/objects/0-3/batch/upsert"),
                (_DEALS, "get", "/crm/v3/objects/0-3/{dealId}"),
                (_PROPERTIES, "get", "/crm/v3/properties/{objectType}"),
                (_PROPERTIES, "post", "/crm/v3/properties/{objectType}")],
    fields={"BatchInputSimplePublicObjectBatchInputUpsert": ["inputs"],
            "SimplePublicObjectBatchInputUpsert": ["id", "idProperty", "properties"],
            "PropertyCreate": ["name", "label", "groupName", "description", "type",
                               "fieldType", "hasUniqueValue", "options"],
            "OptionInput": ["label", "value", "displayOrder", "hidden"]},
    rename={"/crm/v3/objects/0-3/": "/crm/v3/objects/deals/"},
)
_ASANA = "defs/asana_oas.yaml"
ASANA = Vendor(
    title="Asana API 1.0",
    repo="Asana/openapi",
    commit="fc9f8dcf224efa8e06bfc955d91dd95aac7a398d",
    operations=[(_ASANA, "get", "/workspaces/{workspace_gid}"),
                (_ASANA, "get", "/workspaces/{workspace_gid}/projects"),
                (_ASANA, "post", "/projects"),
                (_ASANA, "get", "/projects/{project_gid}"),
                (_ASANA, "get", "/projects/{project_gid}/tasks"),
                (_ASANA, "post", "/tasks")],
    fields={"ProjectRequest": ["name", "notes", "workspace", "team"],
            "TaskCreateRequest": ["name", "notes", "projects", "due_on"]},
)
VENDORS = {"hubspot": HUBSPOT, "asana": ASANA}


def load(vendor: Vendor, git_dir: str) -> dict[str, dict[str, Any]]:
    """Each source file of `vendor` at its commit, parsed, by path."""
    sources = {}
    for path in sorted({source for source, _, _ in vendor.operations}):
        shown = subprocess.run(["git", "-C", git_dir, "show", f"{vendor.commit}:{path}"],
                               capture_output=True, check=True)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        sources[path] = (yaml.load(shown.stdout, Loader=loader) if path.endswith(".yaml")
                         else json.loads(shown.stdout))
    return sources


class _Extraction:
    """The kept part of one vendor's document, built operation by operation."""

    def __init__(self, vendor: Vendor, sources: dict[str, dict[str, Any]]) -> None:
        self.vendor, self.sources = vendor, sources
        self.schemas: dict[str, dict[str, Any]] = {}
        self._from: dict[str, str] = {}  # schema name → the source file it was kept from

    def resolve(self, doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
        """`node`, or what its `$ref` (a local JSON pointer) points at."""
        while "$ref" in node:
            target: Any = doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def schema(self, source: str, schema: dict[str, Any]) -> dict[str, Any]:
        """`schema` with its validating keywords only; a named schema is kept by `keep`."""
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            self.keep(source, name)
            return {"$ref": f"#/components/schemas/{name}"}
        kept = {k: v for k, v in schema.items() if k in KEEP}
        for key in ("items", "additionalProperties"):
            if isinstance(kept.get(key), dict):
                kept[key] = self.schema(source, kept[key])
        if "properties" in kept:
            kept["properties"] = {n: self.schema(source, p) for n, p in kept["properties"].items()}
        for key in ("allOf", "anyOf", "oneOf"):
            if key in kept:
                kept[key] = [self.schema(source, part) for part in kept[key]]
        return kept

    def keep(self, source: str, name: str) -> None:
        """Keep the listed properties of the source's schema `name`, flattened and closed."""
        if self._from.setdefault(name, source) != source:
            raise SystemExit(f"{name} is referenced from {self._from[name]} and {source}")
        if name in self.schemas:
            return
        wanted = self.vendor.fields.get(name)
        if wanted is None:
            raise SystemExit(f"{name} is referenced but not kept: add it to fields")
        self.schemas[name] = {}  # taken, in case it refers to itself
        doc = self.sources[source]
        properties, required = self._flat(doc, doc["components"]["schemas"][name])
        missing = [f for f in wanted if f not in properties]
        if missing:
            raise SystemExit(f"{name} has no {', '.join(missing)} in the source")
        read_only = [f for f in wanted if properties[f].get("readOnly")]
        if read_only:
            raise SystemExit(f"{name}: {', '.join(read_only)} is read-only in the source")
        left_out = [f for f in required if f not in wanted]
        if left_out:
            raise SystemExit(f"{name} requires {', '.join(left_out)}: add to fields")
        kept: dict[str, Any] = {"type": "object", "additionalProperties": False,
                                "properties": {f: self.schema(source, properties[f])
                                               for f in wanted}}
        if required:
            kept["required"] = sorted(required)
        self.schemas[name] = kept

    def _flat(self, doc: dict[str, Any], schema: dict[str, Any]
              ) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """The properties and required names of `schema` with its `allOf` parts merged."""
        schema = self.resolve(doc, schema)
        properties, required = {}, list(schema.get("required", []))
        for part in schema.get("allOf", []):
            more, also = self._flat(doc, part)
            properties.update(more)
            required += also
        properties.update(schema.get("properties", {}))
        return properties, required

    def operation(self, source: str, method: str, path: str) -> dict[str, Any]:
        """The kept operation: its id, path and query parameters, JSON request body."""
        doc = self.sources[source]
        item = doc["paths"][path]
        op = item[method]
        params: dict[tuple[str, str], dict[str, Any]] = {}
        for param in [*item.get("parameters", []), *op.get("parameters", [])]:
            param = self.resolve(doc, param)
            if param["in"] in ("path", "query"):  # an operation's own replaces the path's
                params[(param["name"], param["in"])] = {
                    "name": param["name"], "in": param["in"],
                    "required": bool(param.get("required")),
                    "schema": self.schema(source, param.get("schema", {}))}
        kept: dict[str, Any] = {"operationId": op["operationId"],
                                "parameters": sorted(params.values(),
                                                     key=lambda p: (p["in"], p["name"]))}
        body = self.resolve(doc, op["requestBody"]) if "requestBody" in op else None
        if body is not None:
            schema = body["content"]["application/json"]["schema"]
            kept["requestBody"] = {"required": bool(body.get("required")), "content": {
                "application/json": {"schema": self.schema(source, schema)}}}
        return kept


def extract(vendor: Vendor, sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The kept operations and schemas of `vendor`, in the source's OpenAPI 3 shape."""
    extraction = _Extraction(vendor, sources)
    paths: dict[str, Any] = {}
    for source, method, path in vendor.operations:
        kept_path = path
        for old, new in vendor.rename.items():
            if path.startswith(old):
                kept_path = new + path.removeprefix(old)
        paths.setdefault(kept_path, {})[method] = extraction.operation(source, method, path)
    unused = sorted(set(vendor.fields) - set(extraction.schemas))
    if unused:
        raise SystemExit(f"fields lists {', '.join(unused)}, which no kept operation uses")
    first = sources[vendor.operations[0][0]]
    name = next(n for n, v in VENDORS.items() if v is vendor)
    return {"openapi": first["openapi"],
            "info": {"title": f"{vendor.title} (the part dealflow uses)",
                     "version": first["info"]["version"],
                     "x-source": [f"github.com/{vendor.repo}/blob/{vendor.commit}/{path}"
                                  for path in sorted(sources)],
                     **({"x-renamed-paths": vendor.rename} if vendor.rename else {}),
                     "x-generated-by": f"tests/providers/openapi/oas3_extract.py {name}"},
            "servers": [{"url": s["url"]} for s in first.get("servers", [])],
            "paths": paths,
            "components": {"schemas": dict(sorted(extraction.schemas.items()))}}


def main(argv: list[str]) -> int:
    """Write `<vendor>.json` from a clone of the vendor's repository."""
    if len(argv) != 2 or argv[0] not in VENDORS:
        print(__doc__, file=sys.stderr)
        return 2
    vendor = VENDORS[argv[0]]
    out = HERE / f"{argv[0]}.json"
    out.write_text(json.dumps(extract(vendor, load(vendor, argv[1])), indent=1,
                              sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
