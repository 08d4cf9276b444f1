"""Orchestration: the deal StateGraph, its supervisor and interrupt nodes, the workflow.

The names below are imported when first used (`from graph import build_graph`
works as before): a process that only reads a deal's declaration, such as
`from graph.workflow import Workflow`, does not import the graph builder and
LangGraph's graph machinery with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graph.builder import build_graph
    from graph.runtime import DealContext
    from graph.wait_policy import DeadlineSpec, SystemCall, WaitPolicy
    from graph.workflow import DEFAULT_WORKFLOW, StepSpec, Workflow

_HOMES = {"build_graph": "graph.builder", "DealContext": "graph.runtime",
          "DeadlineSpec": "graph.wait_policy", "SystemCall": "graph.wait_policy",
          "WaitPolicy": "graph.wait_policy", "DEFAULT_WORKFLOW": "graph.workflow",
          "StepSpec": "graph.workflow", "Workflow": "graph.workflow"}

__all__ = ["DEFAULT_WORKFLOW", "DeadlineSpec", "DealContext", "StepSpec", "SystemCall",
           "WaitPolicy", "Workflow", "build_graph"]


def __getattr__(name: str) -> Any:
    """Import one of the public names from its module the first time it is asked for."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'graph' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
