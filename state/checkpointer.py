"""The Postgres checkpointer, with strict (allowlist-only, no pickle) deserialization.

The allowlist is derived from the state schema: every pydantic model (and enum)
a field of the schema can hold, however nested. A step's output model is a
field of the schema (see `graph.workflow`), so declaring the step is enough for
its output to come back from a checkpoint as itself. Anything else that is not
on LangGraph's built-in safe list is refused on load instead of being imported.

`make_checkpointer` (sync) and `make_async_checkpointer` (async) share it.
`setup_database` creates the checkpointer's tables and applies our own
migrations; call it once per process before the first run.
"""

from __future__ import annotations

import enum
import typing
from typing import Any

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

from state.database import AsyncPool, Pool
from state.deal_state import DealState
from state.migrate import apply_migrations


def checkpoint_types(schema: type[BaseModel] = DealState) -> tuple[type, ...]:
    """The schema and every model or enum its fields can hold, in a stable order."""
    found: dict[type, None] = {}

    def visit(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, (BaseModel, enum.Enum)):
            if annotation in found:
                return
            found[annotation] = None
            if issubclass(annotation, BaseModel):
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        for arg in typing.get_args(annotation):
            visit(arg)

    visit(schema)
    return tuple(found)


def checkpoint_serializer(schema: type[BaseModel] = DealState) -> JsonPlusSerializer:
    """A serializer that only revives LangGraph's safe types and the schema's, never pickle."""
    return JsonPlusSerializer(
        pickle_fallback=False,
        allowed_msgpack_modules=[(cls.__module__, cls.__name__)
                                 for cls in checkpoint_types(schema)],
    )


def make_checkpointer(pool: Pool, schema: type[BaseModel] = DealState) -> PostgresSaver:
    """A `PostgresSaver` on `pool` whose serializer allows the types of `schema`."""
    return PostgresSaver(pool, serde=checkpoint_serializer(schema))


def make_async_checkpointer(pool: AsyncPool, schema: type[BaseModel] = DealState
                            ) -> AsyncPostgresSaver:
    """The async twin (`ainvoke`, `astream`, `aget_state`), with the same strict serializer."""
    return AsyncPostgresSaver(pool, serde=checkpoint_serializer(schema))


def setup_database(pool: Pool) -> list[str]:
    """Create the checkpoint tables and apply our migrations; return migrations applied."""
    make_checkpointer(pool).setup()
    return apply_migrations(pool)
