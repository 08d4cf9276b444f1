"""Numbers as people write them: ASCII digits, an optional sign, point and exponent.

Python's `int`, `float` and `Decimal` (and pydantic, which uses them on text)
also read `1_000` as 1000, and `Decimal` reads the digits of other scripts
(`١٠٠٠`): a typo or a pasted value would silently become an amount or a
setting. Every number dealflow reads from text (deal values and lead figures,
numeric environment settings, the CLI's numeric flags) is checked here first.
An exponent stays allowed: `12e2` is the amount 1200 (the same terms as `1200`).
"""

from __future__ import annotations

import re
from typing import Any

_PLAIN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHOLE = re.compile(r"[+-]?[0-9]+")


def plain_number(value: Any) -> Any:
    """`value` unchanged unless it is text that is not a plain numeral (then ValueError).

    For pydantic's `BeforeValidator`: numbers and other types pass through to the
    field's own validation.
    """
    if isinstance(value, str) and not _PLAIN.fullmatch(value.strip()):
        raise ValueError(f"must be a plain number such as 12500 or 12500.50, got {value!r:.40}")
    return value


def whole_number(text: str) -> int:
    """An integer written in plain digits (`42`, `-1`); ValueError for `1_000`, `4.0`, `١٠`."""
    if not _WHOLE.fullmatch(text.strip()):
        raise ValueError(f"must be a whole number in plain digits, got {text!r:.40}")
    return int(text)


def decimal_number(text: str) -> float:
    """A number written in plain digits (`2.5`, `1e3`); ValueError for `1_0.5`, `nan`, `١٠`."""
    plain_number(text)
    return float(text)
