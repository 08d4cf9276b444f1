"""Reading `dealflow run --lead FILE.json`: a small JSON object, bounded in size and depth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dealflow.errors import InvalidInput

MAX_LEAD_BYTES = 64 * 1024  # a lead is a handful of attributes
MAX_LEAD_DEPTH = 8


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def load_lead(path: Path | None) -> dict[str, Any]:
    """The lead attributes in the JSON file `path` (none: `{}`), or `InvalidInput` saying why."""
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_LEAD_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"--lead: cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_LEAD_BYTES:
        raise InvalidInput(f"--lead: {path} is larger than {MAX_LEAD_BYTES // 1024} KiB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"--lead: {path} is not valid JSON: {exc}") from None
    except RecursionError:
        data = None  # nested deeper than Python's parser goes
    if data is None or _depth(data) > MAX_LEAD_DEPTH:
        raise InvalidInput(f"--lead: {path} is nested deeper than {MAX_LEAD_DEPTH} levels")
    if not isinstance(data, dict):
        raise InvalidInput(f"--lead: {path} must hold a JSON object")
    return data
