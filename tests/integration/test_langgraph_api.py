"""The graph as LangGraph users drive it: compile, invoke, stream, inspect, resume."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from langgraph.types import Command

from graph import DealContext, build_graph
from graph.runtime import MissingContext
from state.checkpointer import make_checkpointer
from state.config import Settings
from state.database import open_pool
from state.models import Qualification
from tests.helpers import make_deal


def _compiled(settings: Settings):  # type: ignore[no-untyped-def]
    pool = open_pool(settings.database_url or "")
    return pool, build_graph(settings).compile(checkpointer=make_checkpointer(pool))


def test_invoke_stream_interrupt_and_resume(settings: Settings) -> None:
    pool, graph = _compiled(settings)
    config = {"configurable": {"thread_id": "lg-1"}}
    context = DealContext.on(pool, settings)
    try:
        updates = list(graph.stream({"deal": make_deal("LG-1", "75000.00")}, config,
                                    context=context, stream_mode="updates"))
        nodes = [node for chunk in updates for node in chunk]
        assert nodes[:3] == ["supervisor", "qualify_lead", "supervisor"]
        assert nodes[-1] == "__interrupt__"

        state = graph.get_state(config)
        assert state.next == ("human_review",)
        request = state.interrupts[0].value
        assert set(request) == {"action_requests", "review_configs"}

        # A malformed answer is refused inside the node: the thread keeps waiting.
        graph.invoke(Command(resume={"decision": "sure!"}), config, context=context)
        state = graph.get_state(config)
        assert state.next == ("human_review",)
        assert "decision" in state.interrupts[0].value["error"]

        # LangChain's HITL response shape is accepted too.
        graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config,
                     context=context)
        state = graph.get_state(config)
        assert state.next == ("await_signature",)
        result = graph.invoke(Command(resume="signature.completed"), config, context=context)
        assert result["outcome"] == "completed"
        assert isinstance(result["qualification"], Qualification)

        history = list(graph.get_state_history(config))
        assert history[0].values["outcome"] == "completed"
        assert history[-1].metadata is not None and history[-1].metadata["source"] == "input"
    finally:
        pool.close()


def test_typed_state_round_trips_in_a_new_process(settings: Settings) -> None:
    pool, graph = _compiled(settings)
    config = {"configurable": {"thread_id": "lg-2"}}
    try:
        graph.invoke({"deal": make_deal("LG-2")}, config, context=DealContext.on(pool, settings))
    finally:
        pool.close()
    script = textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("error")
        from graph import build_graph
        from state.checkpointer import make_checkpointer
        from state.database import open_pool
        from state import models
        pool = open_pool({settings.database_url!r})
        graph = build_graph().compile(checkpointer=make_checkpointer(pool))
        values = graph.get_state({{"configurable": {{"thread_id": "lg-2"}}}}).values
        assert type(values["deal"]) is models.DealInput, type(values["deal"])
        assert type(values["qualification"]) is models.Qualification
        assert type(values["project"].tasks[0]) is models.ProjectTask
        assert type(values["envelope"]) is models.Envelope
        print("ok", values["deal"].value)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"LANGGRAPH_STRICT_MSGPACK": "true", "PATH": ""}, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok 12000.00"


def test_a_graph_run_without_its_context_is_a_clear_error(settings: Settings) -> None:
    pool, graph = _compiled(settings)
    try:
        with pytest.raises(MissingContext,
                           match=r"context=DealContext\.on\(pool, settings, saver=saver\)"):
            graph.invoke({"deal": make_deal("LG-3")}, {"configurable": {"thread_id": "lg-3"}})
    finally:
        pool.close()
