"""The Postgres checkpointer, with strict (allowlist-only, no pickle) deserialization.

The allowlist is derived from the state schema: every pydantic model (and enum)
a field of the schema can hold, however nested. A step's output model is a
field of the schema (see `graph.workflow`), so declaring the step is enough for
its output to come back from a checkpoint as itself. Anything else that is not
on LangGraph's built-in safe list is refused on load instead of being imported.

`make_checkpointer` builds dealflow's checkpointer (`state.saver.DealSaver`) with
it; call `setup_database` once per process before the first run.
"""

from __future__ import annotations

import enum
from typing import Any, get_args

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from state.database import Pool, session_connection
from state.deal_state import DealState
from state.leases import Leases
from state.migrate import apply_functions, apply_migrations, migration_lock
from state.pending import PendingWrites
from state.saver import DealSaver


def checkpoint_types(schema: type[BaseModel] = DealState) -> tuple[type, ...]:
    """The schema and every model or enum its fields can hold, in a stable order."""
    found: dict[type, None] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, (BaseModel, enum.Enum)):
            if annotation not in found:
                found[annotation] = None
                if issubclass(annotation, BaseModel):
                    for field in annotation.model_fields.values():
                        visit(field.annotation)
            return
        for arg in get_args(annotation):
            visit(arg)

    visit(schema)
    return tuple(found)


def checkpoint_serializer(schema: type[BaseModel] = DealState) -> JsonPlusSerializer:
    """A serializer that only revives LangGraph's safe types and the schema's, never pickle."""
    return JsonPlusSerializer(pickle_fallback=False, allowed_msgpack_modules=[
        (cls.__module__, cls.__name__) for cls in checkpoint_types(schema)])


def make_checkpointer(pool: Pool, schema: type[BaseModel] = DealState, *,
                      leases: Leases | None = None) -> DealSaver:
    """The dealflow checkpointer on `pool`, allowing the types of `schema`.

    Its writes are fenced by `leases`, the leases this process holds (default:
    none, so it refuses to write to a thread another live process holds). Hand
    it to `DealContext.on(..., saver=)` too, so each step's unit of work is
    written with the step's checkpoint.
    """
    return DealSaver(PendingWrites(pool, leases or Leases(pool)),
                     serde=checkpoint_serializer(schema))


def setup_database(pool: Pool, direct_url: str | None = None) -> list[str]:
    """Create the checkpoint tables, apply our migrations and functions; return migrations applied.

    Both run on one connection holding the migration lock, so concurrent first
    starts on an empty database wait for each other instead of racing. The lock
    is a session's: with `direct_url` (`pool` is a transaction pooler's) the
    connection is a session of its own there.
    """
    with (session_connection(direct_url) if direct_url else pool.connection()) as conn, \
            migration_lock(conn):
        PostgresSaver(conn).setup()
        applied = apply_migrations(conn)
        apply_functions(conn)
        return applied
