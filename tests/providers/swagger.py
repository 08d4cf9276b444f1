"""Requests and answers of a local provider server checked against the vendor's OpenAPI document.

`SwaggerDocument` reads a Swagger 2.0 document (the part of a vendor's that a
connector uses, see `tests/providers/openapi/`) and says what is wrong with a
request (an operation the document lacks, an unknown or missing query
parameter, a body that does not fit the operation's schema) or with an answer
(a body that does not fit the status's schema). Schemas are checked with
`jsonschema` (Draft 4, which Swagger 2.0's schema objects follow).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator  # type: ignore[import-untyped]

from tests.providers.server import Request


class SwaggerDocument:
    """The operations of one Swagger 2.0 document, matched by method and path."""

    def __init__(self, path: Path) -> None:
        """Read the document at `path`."""
        self.doc = json.loads(path.read_text())
        base = self.doc.get("basePath", "").rstrip("/")
        self._ops: list[tuple[str, re.Pattern[str], dict[str, Any]]] = []
        for template, methods in self.doc["paths"].items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(base + template))
            for method, op in methods.items():
                self._ops.append((method.upper(), re.compile(pattern), op))

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        """The operation serving `method path`, if the document has one."""
        return next((op for m, pattern, op in self._ops
                     if m == method and pattern.fullmatch(path)), None)

    def request_problems(self, request: Request) -> list[str]:
        """What is wrong with `request` by the document (nothing: an empty list)."""
        where = f"{request.method} {request.path}"
        op = self.operation(request.method, request.path)
        if op is None:
            return [f"{where}: no such operation in the OpenAPI document"]
        query = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
        problems = [f"{where}: unknown query parameter {name!r}"
                    for name in request.query if name not in query]
        problems += [f"{where}: missing query parameter {name!r}" for name, p in query.items()
                     if p.get("required") and name not in request.query]
        body = next((p for p in op["parameters"] if p["in"] == "body"), None)
        if body is not None and request.body:
            try:
                data = json.loads(request.body)
            except ValueError:
                return [*problems, f"{where}: the body is not JSON"]
            problems += self._misfits(where, body["schema"], data)
        elif request.body:
            problems.append(f"{where}: a body the operation does not take")
        return problems

    def answer_problems(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """What is wrong with the answer `status`, `body` to `method path` by the document."""
        op = self.operation(method, path)
        schema = (op or {}).get("responses", {}).get(str(status), {}).get("schema")
        if op is None or schema is None:
            return []
        return self._misfits(f"answer {status} to {method} {path}", schema, body)

    def _misfits(self, where: str, schema: dict[str, Any], data: Any) -> list[str]:
        validator = Draft4Validator({"definitions": self.doc["definitions"], "allOf": [schema]})
        return [f"{where}: {'/'.join(str(p) for p in error.absolute_path) or 'body'}: "
                f"{error.message}" for error in validator.iter_errors(data)]
