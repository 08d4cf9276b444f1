"""Regenerate `docusign.json`: the part of DocuSign's eSignature v2.1 OpenAPI that dealflow uses.

Source: github.com/docusign/OpenAPI-Specifications, `esignature.rest.swagger-v2.1.json`
at commit `SOURCE_COMMIT` (the newest version of that file under 4 MiB; later
ones are larger). Kept: the operations in `OPERATIONS` (their parameters and
their 2xx/400 answers) and, of each definition in `FIELDS`, only the listed
properties, without descriptions, with `additionalProperties: false` so that a
misspelled or unexpected field fails validation in the local server
(`tests.providers.docusign`). Every kept name is checked against the source.

    python tests/providers/openapi/extract.py SPEC.json   # or a git directory of the repo
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SOURCE_REPO = "docusign/OpenAPI-Specifications"
SOURCE_PATH = "esignature.rest.swagger-v2.1.json"
SOURCE_COMMIT = "67fbd7576ce62272e78c987ce0a0807d37b8cfd5"
OUT = Path(__file__).with_name("docusign.json")

ACCOUNT = "/v2.1/accounts/{accountId}"
OPERATIONS = [("get", ACCOUNT), ("post", f"{ACCOUNT}/envelopes"), ("get", f"{ACCOUNT}/envelopes"),
              ("get", f"{ACCOUNT}/envelopes/{{envelopeId}}"),
              ("put", f"{ACCOUNT}/envelopes/{{envelopeId}}"),
              ("put", f"{ACCOUNT}/envelopes/{{envelopeId}}/recipients")]
ENVELOPE = ["envelopeId", "status", "emailSubject", "createdDateTime", "sentDateTime",
            "statusChangedDateTime", "completedDateTime", "declinedDateTime", "voidedDateTime",
            "voidedReason", "customFields", "recipients"]
FIELDS: dict[str, list[str]] = {
    "accountInformation": ["accountIdGuid", "accountName"],
    "envelopeDefinition": ["emailSubject", "status", "documents", "recipients", "customFields"],
    "document": ["documentId", "name", "fileExtension", "documentBase64"],
    "recipients": ["signers"],
    "signer": ["recipientId", "routingOrder", "name", "email", "status", "tabs"],
    "tabs": ["signHereTabs"],
    "signHere": ["anchorString", "anchorUnits", "anchorXOffset", "anchorYOffset",
                 "anchorIgnoreIfNotPresent"],
    "customFields": ["textCustomFields"],
    "textCustomField": ["fieldId", "name", "value", "show", "required"],
    "envelopeSummary": ["envelopeId", "status", "statusDateTime", "uri"],
    "envelope": ENVELOPE,
    "envelopesInformation": ["envelopes", "resultSetSize", "totalSetSize", "startPosition",
                             "endPosition"],
    "envelopeUpdateSummary": ["envelopeId"],
    "recipientsUpdateSummary": ["recipientUpdateResults"],
    "recipientUpdateResponse": ["recipientId", "errorDetails"],
    "errorDetails": ["errorCode", "message"],
}
KEEP = ("type", "items", "$ref", "format", "enum")


def load(source: str) -> dict[str, Any]:
    """The source document from a file, or from `SOURCE_COMMIT` of a git directory."""
    path = Path(source)
    if path.is_file():
        return dict(json.loads(path.read_text()))
    shown = subprocess.run(["git", "-C", source, "show", f"{SOURCE_COMMIT}:{SOURCE_PATH}"],
                           capture_output=True, check=True)
    return dict(json.loads(shown.stdout))


def _schema(schema: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in schema.items() if k in KEEP}
    if "items" in kept:
        kept["items"] = _schema(kept["items"])
    ref = kept.get("$ref", "").rsplit("/", 1)[-1]
    if ref and ref not in FIELDS:
        raise SystemExit(f"{ref} is referenced but not kept: add it to FIELDS")
    return kept


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The kept operations and definitions, in the source's Swagger 2.0 shape."""
    paths: dict[str, Any] = {}
    for method, path in OPERATIONS:
        op = spec["paths"][path][method]
        params = [{k: _schema(v) if k == "schema" else v for k, v in p.items()
                   if k in ("name", "in", "type", "required", "schema")}
                  for p in op.get("parameters", [])]
        answers = {code: {"schema": _schema(a["schema"])} for code, a in op["responses"].items()
                   if (code.startswith("2") or code == "400") and "schema" in a}
        paths.setdefault(path, {})[method] = {"operationId": op["operationId"],
                                              "parameters": params, "responses": answers}
    definitions = {}
    for name, fields in FIELDS.items():
        properties = spec["definitions"][name]["properties"]
        missing = [f for f in fields if f not in properties]
        if missing:
            raise SystemExit(f"{name} has no {', '.join(missing)} in the source")
        definitions[name] = {"type": "object", "additionalProperties": False,
                             "properties": {f: _schema(properties[f]) for f in fields}}
    return {"swagger": "2.0",
            "info": {"title": "DocuSign eSignature REST API v2.1 (the part dealflow uses)",
                     "x-source": f"github.com/{SOURCE_REPO}/blob/{SOURCE_COMMIT}/{SOURCE_PATH}",
                     "x-generated-by": "tests/providers/openapi/extract.py"},
            "basePath": spec.get("basePath", "/restapi"), "paths": paths,
            "definitions": definitions}


def main(argv: list[str]) -> int:
    """Write `docusign.json` from the source given as the one argument."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(json.dumps(extract(load(argv[0])), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
