"""A deal id runs in one thread: the database's refusal, and the exception it stands for.

The registry's update of a deal (`state.registry`) raises SQLSTATE DF002 when it
names another thread than the deal's own. That update may travel with a step's
checkpoint, so the refusal can surface from any fenced write of the thread:
`state.leases.write_transaction` and the checkpointer turn it into
`DealOwnedElsewhere` wherever it does.
"""

from __future__ import annotations

import psycopg

OWNED_ELSEWHERE_SQLSTATE = "DF002"


class DealOwnedElsewhere(RuntimeError):
    """The deal id is registered to another thread."""


def is_owned_elsewhere(exc: BaseException) -> bool:
    """Whether a database error is the registry refusing a deal to a second thread."""
    return isinstance(exc, psycopg.Error) \
        and getattr(exc, "sqlstate", None) == OWNED_ELSEWHERE_SQLSTATE


def owned_elsewhere(exc: psycopg.Error) -> DealOwnedElsewhere:
    """The `DealOwnedElsewhere` for the database's refusal (its first line)."""
    lines = str(exc).strip().splitlines()
    return DealOwnedElsewhere(lines[0] if lines else "deal owned by another thread")
