"""The names of the graph's own nodes (the steps' nodes are named by their declaration)."""

from __future__ import annotations

SUPERVISOR = "supervisor"
HUMAN_REVIEW = "human_review"
ERROR_HANDLER_PREFIX = "__error_handler__"  # LangGraph's name for a node's error handler


def handled_step(node: str) -> str | None:
    """The step whose error handler `node` is, or None for any other node."""
    return node.removeprefix(ERROR_HANDLER_PREFIX) if node.startswith(ERROR_HANDLER_PREFIX) \
        else None
