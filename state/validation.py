"""One line for a person from a pydantic `ValidationError`: the first invalid field and why."""

from __future__ import annotations

from pydantic import ValidationError


def first_error(exc: ValidationError, what: str = "input") -> str:
    """`field: message` of the first error (`what` when the error has no field).

    A field name that is not printable or is very long is the caller's own text
    (an unknown key, say), so it is quoted and cut rather than echoed raw.
    """
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or what
    if not field.isprintable() or len(field) > 60:
        field = repr(field[:60])
    return f"{field}: {first['msg']}"
