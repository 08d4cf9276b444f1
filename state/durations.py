"""Durations as people write them: `90s`, `15m`, `4h`, `7d`, `7y` (and `off` for none).

A year (`y`) is 365 days: retention ages, never calendar arithmetic.

One parser for every duration dealflow reads: the deadline settings, and the
CLI's `stats --since`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

MAX_DURATION = timedelta(days=36500)  # a hundred years: every deal there is
OFF = ("off", "none", "never")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `7d`, `7y` → timedelta (ValueError otherwise)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhdy])\s*", text)  # ASCII digits
    if not match:
        raise ValueError(f"duration must look like 90s, 30m, 2h or 7d, got {text!r:.40}")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration must be at most {MAX_DURATION.days}d, got {text!r:.40}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of `value` in the units `parse_duration` reads."""
    seconds = value.total_seconds()
    for unit in ("y", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def _optional_duration(value: Any) -> Any:
    if isinstance(value, str):
        if value.strip().lower() in OFF:
            return None
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return value


OptionalDuration = Annotated[
    timedelta | None, BeforeValidator(_optional_duration),
    PlainSerializer(lambda v: format_duration(v) if v is not None else None,
                    return_type=str | None)]
"""A settings field holding a duration (`4h`), or None for `off`."""
