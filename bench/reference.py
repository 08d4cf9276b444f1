"""The reference: the same deals on LangGraph's own `InMemorySaver`, which writes nothing durable.

A checkpointer that keeps checkpoints in the process's memory sends no
checkpoint row and commits nothing. Timed beside ours in the same paired
rounds, it shows what the engine and the nodes cost with a checkpointer at
all: a target that it misses too is not missed for what durability costs.

It is a reference, not a floor. Its deals run the same nodes on the same
Postgres (effects, facts, audit, spans), driven by the graph directly (no
service: no lease, no registry status, no wait claimed before the resume), and
each task writes its unit of work by itself when it ends: ours writes it with
the step's checkpoint (`state.pending`), which it cannot.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from dealflow.api import DealService
from graph.builder import build_graph
from state.models import DealInput

NewDeal = Callable[[], DealInput]


class MemoryDeals:
    """The service's workflow compiled on `InMemorySaver`, run with the service's context."""

    def __init__(self, service: DealService) -> None:
        """The same graph as `service.graph`, on LangGraph's in-memory checkpointer."""
        self.graph: Any = build_graph(service.settings, workflow=service.workflow).compile(
            checkpointer=InMemorySaver())
        self._context = service.context

    def _invoke(self, payload: Any, thread: str) -> None:
        self.graph.invoke(payload, {"configurable": {"thread_id": thread}},
                          context=self._context, durability="sync")

    def short(self, new_deal: NewDeal) -> Callable[[], None]:
        """W1's short deal (a run on a new thread) on the in-memory checkpointer."""
        return lambda: self._invoke({"deal": new_deal()}, f"mem-{uuid.uuid4().hex}")

    def full(self, new_deal: NewDeal) -> Callable[[], float]:
        """A complete deal (start, then the signature), like `_full_deal`: its seconds."""
        def run() -> float:
            started, thread = time.perf_counter(), f"mem-{uuid.uuid4().hex}"
            self._invoke({"deal": new_deal(), "supervisor": "rules"}, thread)
            self._invoke(Command(resume={"event": "signature.completed"}), thread)
            return time.perf_counter() - started
        return run
