"""The Postgres checkpointer, with strict (allowlist-only, no pickle) deserialization.

`setup_database` creates the checkpointer's tables and applies our own
migrations; call it once per process before the first run.
"""

from __future__ import annotations

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from state import models
from state.database import Pool
from state.deal_state import DealState
from state.migrate import apply_migrations

# Every type of ours that may sit in a checkpoint. Anything else that is not on
# LangGraph's built-in safe list is refused on load instead of being imported.
CHECKPOINT_TYPES: tuple[type, ...] = (
    DealState,
    models.DealInput,
    models.LeadAttributes,
    models.Qualification,
    models.LeadRecord,
    models.ProjectTask,
    models.Project,
    models.Contract,
    models.Envelope,
    models.SignatureEvent,
    models.InvoiceLine,
    models.Invoice,
    models.Failure,
    models.ReviewDecision,
    models.LLMUsage,
    models.Escalation,
)


def checkpoint_serializer() -> JsonPlusSerializer:
    """A serializer that only revives LangGraph's safe types and ours, never pickle."""
    return JsonPlusSerializer(
        pickle_fallback=False,
        allowed_msgpack_modules=[(cls.__module__, cls.__name__) for cls in CHECKPOINT_TYPES],
    )


def make_checkpointer(pool: Pool) -> PostgresSaver:
    """A `PostgresSaver` on `pool` using the strict serializer."""
    return PostgresSaver(pool, serde=checkpoint_serializer())


def setup_database(pool: Pool) -> list[str]:
    """Create the checkpoint tables and apply our migrations; return migrations applied."""
    make_checkpointer(pool).setup()
    return apply_migrations(pool)
