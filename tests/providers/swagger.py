"""Requests and answers of a local provider server checked against the vendor's OpenAPI document.

`OpenAPIDocument` reads a Swagger 2.0 or an OpenAPI 3.0 document (the part of
a vendor's that a connector uses, see `tests/providers/openapi/`) and says what
is wrong with a request (an operation the document lacks, an unknown or missing
query parameter or one whose value does not fit its schema, a body that does
not fit the operation's schema or is missing) or with an answer (a body that
does not fit the status's schema). Schemas are checked with `jsonschema`
(Draft 4, which the schema objects of both versions follow; OpenAPI 3.0's
`nullable: true` is read as allowing `null`), formats such as `date` included.
A query value is a string: an integer, number or boolean parameter's is read as
one, an array's as a comma-separated list (OpenAPI's `style: form`, as the
vendors' documents describe their list parameters). An OpenAPI 3 document's
paths are relative to the local server's base URL, which stands for the
vendor's server URL; a Swagger 2.0 document's start with its `basePath`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker  # type: ignore[import-untyped]

from tests.providers.server import Request

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


class OpenAPIDocument:
    """The operations of one Swagger 2.0 or OpenAPI 3.0 document, matched by method and path."""

    def __init__(self, path: Path) -> None:
        """Read the document at `path`."""
        self.doc = _nullable(json.loads(path.read_text()))
        base = self.doc.get("basePath", "").rstrip("/") if "swagger" in self.doc else ""
        self._ops: list[tuple[str, re.Pattern[str], dict[str, Any], list[dict[str, Any]]]] = []
        for template, item in self.doc["paths"].items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(base + template))
            for method, op in item.items():
                if method in METHODS:
                    named = {(p["name"], p["in"]): p
                             for p in [*item.get("parameters", []), *op.get("parameters", [])]}
                    self._ops.append((method.upper(), re.compile(pattern), op,
                                      list(named.values())))

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        """The operation serving `method path`, if the document has one."""
        found = self._find(method, path)
        return found[0] if found else None

    def request_problems(self, request: Request) -> list[str]:
        """What is wrong with `request` by the document (nothing: an empty list)."""
        where = f"{request.method} {request.path}"
        found = self._find(request.method, request.path)
        if found is None:
            return [f"{where}: no such operation in the OpenAPI document"]
        op, params = found
        query = {p["name"]: p for p in params if p["in"] == "query"}
        problems = [f"{where}: unknown query parameter {name!r}"
                    for name in request.query if name not in query]
        problems += [f"{where}: missing query parameter {name!r}" for name, p in query.items()
                     if p.get("required") and name not in request.query]
        for name, value in request.query.items():
            if name in query:
                schema = query[name].get("schema") or {
                    k: v for k, v in query[name].items() if k in ("type", "items", "enum")}
                problems += self._misfits(f"{where}: query parameter {name!r}", schema,
                                          _query_value(value, schema), whole="")
        schema, required = _body(op, params)
        if schema is not None and request.body:
            try:
                data = json.loads(request.body)
            except ValueError:
                return [*problems, f"{where}: the body is not JSON"]
            problems += self._misfits(where, schema, data)
        elif request.body:
            problems.append(f"{where}: a body the operation does not take")
        elif required:
            problems.append(f"{where}: the body the operation requires is missing")
        return problems

    def answer_problems(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """What is wrong with the answer `status`, `body` to `method path` by the document."""
        op = self.operation(method, path)
        answer = (op or {}).get("responses", {}).get(str(status), {})
        schema = answer.get("schema") or answer.get("content", {}).get(
            "application/json", {}).get("schema")
        if op is None or schema is None:
            return []
        return self._misfits(f"answer {status} to {method} {path}", schema, body)

    def _find(self, method: str, path: str
              ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        return next(((op, params) for m, pattern, op, params in self._ops
                     if m == method and pattern.fullmatch(path)), None)

    def _misfits(self, where: str, schema: dict[str, Any], data: Any,
                 whole: str = "body") -> list[str]:
        """What of `data` does not fit `schema`, each at its place in `data` (`whole`: all)."""
        named = {k: self.doc[k] for k in ("definitions", "components") if k in self.doc}
        validator = Draft4Validator({**named, "allOf": [schema]}, format_checker=FormatChecker())
        problems = []
        for error in validator.iter_errors(data):
            place = "/".join(str(p) for p in error.absolute_path) or whole
            said = error.message
            if error.validator == "enum" and len(error.validator_value) > 12:  # not all of them
                said = f"{error.instance!r} is not one of the {len(error.validator_value)} " \
                       "values the document allows"
            problems.append(f"{where}: {place}: {said}" if place else f"{where}: {said}")
        return problems


def _body(op: dict[str, Any], params: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, bool]:
    """The schema of the operation's JSON body, if it takes one, and whether it is required.

    Swagger 2.0 gives the body as the parameter `in: body`, OpenAPI 3 as `requestBody`.
    """
    if "requestBody" in op:
        body = op["requestBody"]
        return body["content"]["application/json"]["schema"], bool(body.get("required"))
    param = next((p for p in params if p["in"] == "body"), None)
    return (param["schema"], bool(param.get("required"))) if param else (None, False)


def _query_value(value: str, schema: dict[str, Any]) -> Any:
    """A query string value as the parameter's type reads it (unchanged if it cannot)."""
    kind = schema.get("type")
    if kind == "array":
        return [_query_value(part, schema.get("items", {})) for part in value.split(",")]
    read: dict[str, Any] = {"integer": int, "number": float,
                            "boolean": {"true": True, "false": False}.__getitem__}
    try:
        return read[kind](value) if kind in read else value
    except (KeyError, ValueError):
        return value


def _nullable(node: Any) -> Any:
    """The document with each OpenAPI 3.0 `nullable: true` schema allowing `null` instead."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if not (k == "nullable" and v is True)}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out
